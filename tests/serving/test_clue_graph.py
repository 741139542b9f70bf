"""The clue page's graph (serving.evidence.neighbourhood): the PDF's colours, the legend, each node's claims.

No warehouse here: the graph is drawn from the claims alone, as it is when the warehouse has no graph."""

from __future__ import annotations

from serving.evidence import graph_legend, neighbourhood
from serving.evidence_export.graph import NODE_TYPES
from serving.evidence_export.report import NODE_COLOURS

ROWS = [{"setl_id": "S1", "psn_no": "P1", "fixmedins_code": "H1", "fixmedins_name": "南关区第1人民医院", "prac_code": "D1",
         "med_type": "11", "fund_pay_sumamt": 100.0},
        {"setl_id": "S2", "psn_no": "P2", "fixmedins_code": "H1", "fixmedins_name": "南关区第1人民医院", "prac_code": "D1",
         "med_type": "11", "fund_pay_sumamt": 50.0},
        {"setl_id": "S3", "psn_no": "P2", "fixmedins_code": "Y7", "fixmedins_name": "南关区大药房第7分店", "prac_code": None,
         "med_type": "41", "fund_pay_sumamt": 20.0}]


def test_nodes_carry_the_pdf_colours_and_their_claims():
    clue = {"entity_type": "ring", "entity_id": "C1", "entity_name": "疑似团伙 C1",
            "evidence": {"setl_id": ["S1", "S2", "S3"], "graph": {"members": ["person:P1", "person:P2"]}}}
    g = neighbourhood(None, clue, ROWS)
    nodes = {n["id"]: n for n in g["nodes"]}
    for n in nodes.values():
        if n["type"] in NODE_TYPES:
            assert n["colour"] == NODE_COLOURS[NODE_TYPES[n["type"]][0]], n
    assert nodes["psn:P2"]["setl_ids"] == ["S2", "S3"] and nodes["prac:D1"]["setl_ids"] == ["S1", "S2"]
    assert nodes["pharmacy:Y7"]["label"] == "南关区大药房第7分店" and nodes["pharmacy:Y7"]["type_zh"] == "零售药店"
    assert nodes["ring:C1"]["setl_ids"] == ["S1", "S2", "S3"]  # its members' claims
    assert [x["type"] for x in g["legend"]] == ["psn", "prac", "fixmedins", "pharmacy", "ring"]


def test_the_legend_is_the_pdf_s():
    legend = graph_legend()
    assert {x["colour"] for x in legend} == set(NODE_COLOURS.values())
    assert all(x["colour"] == NODE_COLOURS[NODE_TYPES[x["type"]][0]] for x in legend)
