#!/usr/bin/env python3
"""scripts/fetch-data against a local HTTP server on 127.0.0.1 that serves small files in the official
formats: a cifar-10-binary.tar.gz and a cifar-100-binary.tar.gz with the official layout (a few
records each), and SVHN .mat files (MATLAB level 5, compressed elements) written here with Python's
standard library, independently of sdnet's readers. Their MD5s reach the script only through its
explicit override, SD_FETCH_MD5S; without it the published MD5s apply, and these files fail them.

  test_fetch_data.py downloads|mismatch|offline   (one case a call; ctest runs each)
"""
import hashlib
import http.server
import io
import os
import socket
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import zlib

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts")
FAILURES = []


def check(ok, what, detail=""):
    if not ok:
        FAILURES.append(what)
        print(f"FAILED: {what}\n{detail}", file=sys.stderr)


# ---- the small files, in the official formats ----

def records(n, label_bytes, seed):
    """n records: label bytes, then 3 072 pixel bytes (R, G, B planes of 32×32)."""
    out = bytearray()
    for i in range(n):
        out += bytes(label_bytes(i)) + bytes((seed + 7 * i + j) % 256 for j in range(3072))
    return bytes(out)


def targz(folder, files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(folder)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def cifar10_files():
    files = {f"data_batch_{b}.bin": records(2, lambda i, b=b: [(b + i) % 10], b) for b in range(1, 6)}
    files["test_batch.bin"] = records(2, lambda i: [i], 99)
    files["batches.meta.txt"] = b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n"
    files["readme.html"] = b"<meta HTTP-EQUIV=\"REFRESH\" content=\"0; url=http://www.cs.toronto.edu/~kriz/cifar.html\">\n"
    return files


def cifar100_files():
    return {"train.bin": records(3, lambda i: [i % 20, (5 * i) % 100], 1),
            "test.bin": records(2, lambda i: [i, 99 - i], 2),
            "fine_label_names.txt": "".join(f"fine{i}\n" for i in range(100)).encode(),
            "coarse_label_names.txt": "".join(f"coarse{i}\n" for i in range(20)).encode()}


def mat_element(kind, data):
    """A level-5 data element: tag (type, byte count), data, padding to 8 bytes."""
    return struct.pack("<II", kind, len(data)) + data + b"\0" * (-len(data) % 8)


def mat_uint8_matrix(name, dims, data):
    """A compressed (miCOMPRESSED) uint8 (mxUINT8_CLASS) matrix element."""
    mi_int8, mi_uint8, mi_int32, mi_uint32, mi_matrix, mi_compressed, mx_uint8 = 1, 2, 5, 6, 14, 15, 9
    body = (mat_element(mi_uint32, struct.pack("<II", mx_uint8, 0)) +
            mat_element(mi_int32, struct.pack(f"<{len(dims)}i", *dims)) +
            mat_element(mi_int8, name.encode()) + mat_element(mi_uint8, data))
    packed = zlib.compress(struct.pack("<II", mi_matrix, len(body)) + body)
    return struct.pack("<II", mi_compressed, len(packed)) + packed


def svhn_mat(n, seed):
    """SVHN Format 2: X uint8 32×32×3×N (column-major), y uint8 N×1 with 10 for the digit 0."""
    header = b"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: Mon Dec  6 12:00:00 2026".ljust(116)
    header += b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM"
    x = bytes((seed + 3 * i) % 256 for i in range(32 * 32 * 3 * n))
    y = bytes(1 + (seed + i) % 10 for i in range(n))
    return header + mat_uint8_matrix("X", [32, 32, 3, n], x) + mat_uint8_matrix("y", [n, 1], y)


def svhn_files():
    return {"train_32x32.mat": svhn_mat(3, 1), "test_32x32.mat": svhn_mat(2, 2), "extra_32x32.mat": svhn_mat(4, 3)}


def served_files():
    return {"cifar-10-binary.tar.gz": targz("cifar-10-batches-bin", cifar10_files()),
            "cifar-100-binary.tar.gz": targz("cifar-100-binary", cifar100_files()), **svhn_files()}


def md5(data):
    return hashlib.md5(data).hexdigest()


# ---- the server and the script ----

class Server:
    """Serves `files` on 127.0.0.1 (a free port) and counts the requests."""

    def __init__(self, files):
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                data = files.get(self.path.lstrip("/"))
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port_url():
    """A loopback URL nothing listens on: the network refusing."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def fetch(args, url, md5s=None, script="fetch-data"):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SD_FETCH_")}
    env["SD_FETCH_URL"] = url
    if md5s is not None:
        fd, path = tempfile.mkstemp(suffix=".md5")
        with os.fdopen(fd, "w") as f:
            f.writelines(f"{digest}  {name}\n" for name, digest in md5s.items())
        env["SD_FETCH_MD5S"] = path
    try:
        r = subprocess.run([os.path.join(SCRIPTS, script)] + args, env=env, capture_output=True, text=True, timeout=60)
    finally:
        if md5s is not None:
            os.unlink(path)
    return r.returncode, r.stdout + r.stderr


def tree(dest):
    return sorted(os.path.relpath(os.path.join(d, f), dest) for d, _, fs in os.walk(dest) for f in fs + _)


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ---- the cases ----

def case_downloads(tmp, files):
    server = Server(files)
    try:
        dest = os.path.join(tmp, "data")
        # CIFAR-100: the archive checked, unpacked with the official layout, MD5SUMS beside it.
        rc, out = fetch(["cifar100", dest], server.url, {"cifar-100-binary.tar.gz": md5(files["cifar-100-binary.tar.gz"])})
        check(rc == 0, "cifar100 fetched", out)
        check("NOT the published ones" in out, "the MD5 override is said", out)
        for name, data in cifar100_files().items():
            check(read(os.path.join(dest, "cifar-100-binary", name)) == data, f"cifar-100-binary/{name} as served")
        check(os.path.exists(os.path.join(dest, "cifar-100-binary", "MD5SUMS")), "cifar-100-binary/MD5SUMS written")
        # Again: verified in place, nothing downloaded.
        before = len(server.requests)
        rc, out = fetch(["cifar100", dest], server.url, {"cifar-100-binary.tar.gz": md5(files["cifar-100-binary.tar.gz"])})
        check(rc == 0 and "already there" in out and len(server.requests) == before, "cifar100 already there", out)
        # A damaged file is noticed and fetched afresh.
        with open(os.path.join(dest, "cifar-100-binary", "test.bin"), "r+b") as f:
            f.write(b"\xff")
        rc, out = fetch(["cifar100", dest], server.url, {"cifar-100-binary.tar.gz": md5(files["cifar-100-binary.tar.gz"])})
        check(rc == 0 and "fetching afresh" in out, "a damaged cifar100 folder is fetched afresh", out)
        check(read(os.path.join(dest, "cifar-100-binary", "test.bin")) == cifar100_files()["test.bin"], "test.bin repaired")

        # SVHN: the three .mat files, each checked.
        svhn = {n: md5(files[n]) for n in svhn_files()}
        rc, out = fetch(["svhn", dest], server.url, svhn)
        check(rc == 0, "svhn fetched", out)
        for name, data in svhn_files().items():
            check(read(os.path.join(dest, "svhn", name)) == data, f"svhn/{name} as served")

        # CIFAR-10 through the old name, its official route.
        cifar10 = {n: md5(d) for n, d in cifar10_files().items() if n != "readme.html"}
        rc, out = fetch(["--via", "official", dest], server.url, cifar10, script="fetch-cifar10")
        check(rc == 0, "fetch-cifar10 --via official fetched", out)
        for name in cifar10:
            check(read(os.path.join(dest, "cifar-10-batches-bin", name)) == cifar10_files()[name], f"cifar-10-batches-bin/{name}")
        check(not any(n.startswith(".fetch-data") for n in os.listdir(dest)), "no scratch folder left", str(tree(dest)))
    finally:
        server.close()

    # Offline, with the archive put into DEST by hand: installed from it after the check.
    hand = os.path.join(tmp, "by-hand")
    os.makedirs(hand)
    with open(os.path.join(hand, "cifar-100-binary.tar.gz"), "wb") as f:
        f.write(files["cifar-100-binary.tar.gz"])
    rc, out = fetch(["cifar100", hand], closed_port_url(), {"cifar-100-binary.tar.gz": md5(files["cifar-100-binary.tar.gz"])})
    check(rc == 0 and read(os.path.join(hand, "cifar-100-binary", "train.bin")) == cifar100_files()["train.bin"],
          "an archive put in DEST by hand is used", out)

    rc, out = fetch(["mnist", dest], closed_port_url())
    check(rc == 1 and out.strip() == "fetch-data: unknown data set 'mnist': expected cifar10, cifar100 or svhn",
          "an unknown data set is one line", out)


def case_mismatch(tmp, files):
    server = Server(files)
    try:
        def refused(args, md5s, expect, what):
            dest = os.path.join(tmp, what.replace(" ", "-"))
            rc, out = fetch(args + [dest], server.url, md5s)
            check(rc == 1, f"{what}: refused", out)
            check(expect in out and "nothing was installed" in out, f"{what}: says why", out)
            check(tree(dest) == [], f"{what}: nothing left in DEST", str(tree(dest)))

        wrong = "0123456789abcdef0123456789abcdef"
        refused(["cifar100"], {"cifar-100-binary.tar.gz": wrong}, f"expected {wrong}", "cifar100 archive")
        # No override: the published MD5 applies, and the small archive is not the official one.
        refused(["cifar100"], None, "expected 03b5dce01913d631647c71ecec9e9cb8", "cifar100 published")
        svhn = {n: md5(files[n]) for n in svhn_files()}
        svhn["extra_32x32.mat"] = wrong
        refused(["svhn"], svhn, "extra_32x32.mat: MD5", "svhn extra")
        refused(["svhn"], None, "expected e26dedcc434d2e4c54c9b2d4a06d8373", "svhn published")
        cifar10 = {n: md5(d) for n, d in cifar10_files().items() if n != "readme.html"}
        cifar10["test_batch.bin"] = wrong
        refused(["--via", "official", "cifar10"], cifar10, "test_batch.bin: MD5", "cifar10 test batch")
    finally:
        server.close()


def case_offline(tmp, files):
    url = closed_port_url()
    for args, names in ((["cifar100"], "cifar-100-binary.tar.gz"),
                        (["svhn"], "train_32x32.mat, test_32x32.mat, extra_32x32.mat"),
                        (["--via", "official", "cifar10"], "cifar-10-binary.tar.gz")):
        dest = os.path.join(tmp, args[-1])
        rc, out = fetch(args + [dest], url)
        errors = [line for line in out.splitlines() if not line.startswith("fetch-data: downloading ")]
        check(rc == 1 and len(errors) == 1, f"{args[-1]} offline: one line", out)
        first = names.split(",")[0]
        check(errors[:1] and errors[0].startswith(f"fetch-data: cannot download {url}/{first} (curl: ") and
              errors[0].endswith(f"; download {names} from {url}/ by hand into {dest}/ and run this again"),
              f"{args[-1]} offline: says where to put the files", out)
        check(tree(dest) == [], f"{args[-1]} offline: nothing left in DEST", str(tree(dest)))


def main():
    cases = {"downloads": case_downloads, "mismatch": case_mismatch, "offline": case_offline}
    if len(sys.argv) != 2 or sys.argv[1] not in cases:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(cases)}")
    with tempfile.TemporaryDirectory(prefix="sdnet-fetch-") as tmp:
        cases[sys.argv[1]](tmp, served_files())
    if FAILURES:
        sys.exit(f"{len(FAILURES)} check(s) failed: {'; '.join(FAILURES)}")
    print(f"fetch-data {sys.argv[1]}: all checks passed")


if __name__ == "__main__":
    main()
