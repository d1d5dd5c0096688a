"""OMS codecs: the XML documents the OMS sends and receives, validated and mapped (no I/O)."""
