"""flashdreams: the streaming-decoder interface certified by the conformance kit.

Only the pieces a decoder author needs live here: :mod:`flashdreams.infra.config`
(configs that build the objects they describe) and :mod:`flashdreams.infra.decoder`
(the streaming decoder base classes).
"""

__version__ = "0.1.0"
