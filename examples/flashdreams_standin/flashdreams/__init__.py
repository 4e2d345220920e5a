"""Stand-in for a decoder framework's own top-level ``flashdreams`` package.

It is NOT the kit's interface: a separate copy of the interface modules (the same
qualified names, other class objects), laid out the way such frameworks lay it out
(``flashdreams.infra.config`` is a package here, a module in the kit's repository).
The kit's ecosystem tests install this distribution next to the kit to prove both
coexist and that decoders built on this copy certify on their merits.
"""

FRAMEWORK = "flashdreams-standin"
