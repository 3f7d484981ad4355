#!/usr/bin/env python3
"""The benchmark's application: a Django-sized tree (about 280 files, 1.2 MB packed) in a
tarball that is the same, byte for byte, on every run.

    make-artifact.py OUT.tar.gz [VERSION] [VENDOR_MB]

VENDOR_MB (default 0) adds that many 1 MiB files of incompressible bytes under vendor/ (the
wheels, node_modules and assets that make a real app 50-500 MB), the same every run; the
delta benchmark (bench/delta.sh) uses 100.
"""
import gzip, io, random, sys, tarfile

out = sys.argv[1]
version = sys.argv[2] if len(sys.argv) > 2 else "1.0.0"
rng = random.Random(7)
vocabulary = ["release", "current", "shared", "plan", "apply", "host", "role", "stage", "lock", "switch"]


def prose(size):
    lines = []
    while sum(len(l) + 1 for l in lines) < size:
        lines.append(" ".join(rng.choice(vocabulary) for _ in range(10)))
    return "\n".join(lines).encode()


files = {f"app/views_{i:03}.py": b"# views\n" + prose(4000) for i in range(240)}
files.update({f"templates/t_{i:02}.html": b"<html>\n" + prose(2000) + b"\n</html>" for i in range(40)})
files["static/app.js"] = bytes(rng.getrandbits(8) for _ in range(1 << 20))
files["VERSION"] = version.encode() + b"\n"
vendor_mb = int(sys.argv[3]) if len(sys.argv) > 3 else 0
for i in range(vendor_mb):
    files[f"vendor/blob_{i:03}.whl"] = random.Random(1000 + i).randbytes(1 << 20)

raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
    for name in sorted(files):
        data = files[name]
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), 946684800, 0o644
        tar.addfile(info, io.BytesIO(data))
with open(out, "wb") as f:
    f.write(gzip.compress(raw.getvalue(), mtime=0, compresslevel=1 if vendor_mb else 9))
