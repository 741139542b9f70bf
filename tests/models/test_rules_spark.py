"""The rule stage on Spark keeps its shared views before the first rule (``models.rules.spark.SparkRules``)."""

from __future__ import annotations

import pytest

pytest.importorskip("pyspark")


@pytest.mark.slow
def test_the_views_the_rules_read_are_computed_before_the_first_rule(tiny_warehouse, spark):
    """With the rules of the run given, the cached base views they read (settlements, visits, diagnoses, fee
    lines, stock books) are in Spark's memory when SparkRules is made, so that their time is the run's
    ``shared_seconds`` and not the first rule's; with no rules, none is computed."""
    from features.spark import ParquetExports
    from features.warehouse import connect
    from models.rules.config import DEFAULT_CONFIG, load_config
    from models.rules.engine import prepare_session
    from models.rules.spark import SPARK_CACHED, SparkRules

    config = load_config(DEFAULT_CONFIG)

    cache = spark._jsparkSession.sharedState().cacheManager()

    def computed(name: str) -> bool:  # the view's cached data is in Spark's memory (or on its disk) already
        found = cache.lookupCachedData(spark.table(name)._jdf)
        return found.isDefined() and found.get().cachedRepresentation().cacheBuilder().isCachedColumnBuffersLoaded()

    def computed_on_making(rules) -> set[str]:
        exports = ParquetExports(spark)  # a folder of its own: no other test's cache has these plans
        try:
            with connect(tiny_warehouse, read_only=True) as con:
                prepare_session(con, config)
                on_spark = SparkRules(con, config, exports, rules=rules)
                try:
                    return {name for name in SPARK_CACHED if computed(name)}
                finally:
                    on_spark.close()
        finally:
            exports.close()

    assert computed_on_making(()) == set()
    assert computed_on_making(config.enabled_rules) == set(SPARK_CACHED)
