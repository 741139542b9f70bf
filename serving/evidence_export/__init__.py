"""Evidence packages for public security (移送公安证据包): a clue's case graph and claims, signed.

:func:`export_package` writes one clue's package (GraphML, GEXF, Neo4j admin-import CSVs, an i2 link
table, settlements, fee lines, rule hits, a Chinese report as HTML and PDF, ``manifest.json`` signed
with Ed25519 in ``manifest.sig``); :func:`verify_package` proves with the public key alone that a
package is complete and unchanged; :func:`zip_package` packs one for download;
:func:`generate_keypair` makes the administrator's key pair.
Redaction: see :mod:`serving.evidence_export.redact`. Formats and schema: ``docs/evidence.md``.
"""

from serving.evidence_export.package import export_package, zip_package
from serving.evidence_export.signing import KEY_ENV, VerifyResult, generate_keypair, verify_package

__all__ = ["export_package", "zip_package", "verify_package", "VerifyResult", "generate_keypair", "KEY_ENV"]
