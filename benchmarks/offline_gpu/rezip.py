"""On the device: <pyspark>/jars_x/<name>.jar/<tree> -> <pyspark>/jars/<name>.jar, stored
(uncompressed). A pruned jar's INDEX.LIST and signatures no longer match it and are dropped;
directory entries are written, since Spark finds its web UI's static folder as a resource."""
import os
import shutil
import sys
import zipfile

SKIP_SUFFIXES = (".SF", ".RSA", ".DSA", ".EC", "INDEX.LIST")


def main(root: str) -> None:
    src, dst = os.path.join(root, "jars_x"), os.path.join(root, "jars")
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    for jar in sorted(os.listdir(src)):
        base = os.path.join(src, jar)
        with zipfile.ZipFile(os.path.join(dst, jar), "w", zipfile.ZIP_STORED) as z:
            mf = os.path.join(base, "META-INF", "MANIFEST.MF")
            if os.path.exists(mf):
                z.write(mf, "META-INF/MANIFEST.MF")  # first, as jar readers expect
            for d, dirs, files in os.walk(base):
                dirs.sort()
                if d != base:
                    z.writestr(os.path.relpath(d, base) + "/", b"")
                for f in sorted(files):
                    rel = os.path.relpath(os.path.join(d, f), base)
                    up = rel.upper()
                    if rel == "META-INF/MANIFEST.MF" or (up.startswith("META-INF/") and up.endswith(SKIP_SUFFIXES)):
                        continue
                    z.write(os.path.join(d, f), rel)


if __name__ == "__main__":
    main(sys.argv[1])
