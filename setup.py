"""Package list of the flashdreams-conformance distribution (everything else: pyproject.toml).

The distribution installs ``conformance`` and ``reference_decoders``, and this
repository's ``flashdreams/`` folder under the private name ``conformance._flashdreams``
(see ``conformance.bases``). It installs no top-level ``flashdreams``: decoder frameworks
ship their own, and two distributions writing the same files overwrite each other.
The public name is the optional ``packaging/flashdreams-interface`` distribution's job.
A plain ``setup.py`` because ``[tool.setuptools.packages.find]`` cannot discover a
package that is installed under another name than its folder's.
"""

from setuptools import find_packages, setup

BUNDLED = "conformance._flashdreams"

kit = find_packages(include=["conformance", "conformance.*", "reference_decoders", "reference_decoders.*"])
interface = find_packages(include=["flashdreams", "flashdreams.*"])
bundled = [BUNDLED + name[len("flashdreams") :] for name in interface]

setup(packages=kit + bundled, package_dir={BUNDLED: "flashdreams"})
