"""install_dir.py CANDIDATE PREFIX: prints where `meson install` puts the kvcali package.

CANDIDATE (Meson's choice) when the interpreter searches it or when the interpreter's default
site-packages is not under PREFIX; else that default site-packages (Debian: /usr/local/lib/python3.X/
dist-packages for the prefix /usr/local, where Meson 1.0 picks /usr/local/lib/python3/dist-packages).
"""
import sys
import sysconfig

candidate, prefix = sys.argv[1], sys.argv[2].rstrip("/")
default = sysconfig.get_path("platlib")
print(candidate if candidate in sys.path or not default.startswith(prefix + "/") else default)
