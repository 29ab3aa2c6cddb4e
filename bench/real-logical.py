#!/usr/bin/env python3
"""aimem's logical backups and their restore against the plain tools, on a real Qdrant (issue 20).

A measurement by hand, never part of the test suite: it needs a real Qdrant binary.

    QDRANT_BIN=/path/to/qdrant AIMEM=target/release/aimem python3 bench/real-logical.py \\
        [--qdrant-bin BIN]... [--collections 4] [--points 40000] [--dim 768] [--rounds 3] \\
        [--restore-rounds N] [--trace DIR]

The points are made once (in a temporary folder, reused for every binary): `--collections`
collections shaped like AI Memory's (an unnamed dense vector of `--dim` dims, Cosine; a sparse
vector `bm25` with the idf modifier and about 20 nonzeros per point; UUID ids; a payload with a
`group_id` keyword (payload index, is_tenant), a `type`, a `content` text of a few hundred
bytes, a `timestamp`, a `content_hash` and a `version`), written as upsert bodies of 1,000
points. For each binary (`--qdrant-bin`, repeatable, else QDRANT_BIN) it starts a single node on
loopback with a fresh storage folder, seeds the collections with those bodies, waits until each
is green, then runs interleaved rounds (the order alternating each round) of:

- plain export: for each collection in turn, scroll pages of 1,000 points (`with_vector`,
  `with_payload`) over one keep-alive connection, each raw response body written to a file
  (no fsync); the next page's offset is cut out of the body's tail, not parsed;
- `aimem backup --format logical` of the collections (default settings);

and then, the collections deleted before each run:

- plain upserts: for each collection in turn, create it from the same definition, send the
  seeded bodies (batches of 1,000, `wait=true`) over one keep-alive connection, create the
  `group_id` payload index, poll until the collection is green (every 0.1 s);
- `aimem restore <last logical backup> --force` (it waits for green itself).

Each run's time is wall clock; aimem's peak RSS and CPU come from GNU time, the server's CPU
from /proc. It prints every run, the medians, and whether the issue's targets are met:
backup <= 0.9x plain export, restore <= 0.9x plain upserts, aimem's peak RSS <= 64 MiB, and the
Parquet files no larger than the raw float32 vectors plus the payloads' compact JSON.
`--trace DIR` runs one more backup and restore with `-v` (not counted), keeps their request
logs in DIR and prints the requests' count and time by kind.

On a 2-core machine the defaults take about 25 minutes per binary: making the points 20 s,
seeding and indexing 2 to 2.5 min, a backup round 15 s, a restore round 3 to 5 min (both ways
wait for Qdrant to build the HNSW indexes of 160,000 768-d vectors). `--restore-rounds 2`
keeps it near 15 minutes.
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HOST = "127.0.0.1"
BATCH = 1000
PAGE = 1000
MiB = 2**20


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Connection:
    """One keep-alive HTTP connection, as a plain tool would hold."""

    def __init__(self, port):
        self.port = port
        self.http = http.client.HTTPConnection(HOST, port, timeout=1800)

    def send(self, method, path, body=None, ok=(200,)):
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if data is not None else {}
        for attempt in (1, 2):
            try:
                self.http.request(method, path, body=data, headers=headers)
                response = self.http.getresponse()
                raw = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection: open another, once.
                self.http.close()
                if attempt == 2:
                    raise
        if response.status not in ok:
            raise SystemExit(f"{method} {path}: {response.status} {raw[:300]!r}")
        return raw

    def call(self, method, path, body=None):
        return json.loads(self.send(method, path, body) or b"null")

    def close(self):
        self.http.close()


class Server:
    def __init__(self, binary, folder):
        os.makedirs(folder)
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        env = dict(os.environ)
        env.update(
            {
                "QDRANT__SERVICE__HOST": HOST,
                "QDRANT__SERVICE__HTTP_PORT": str(self.port),
                "QDRANT__SERVICE__GRPC_PORT": str(free_port()),
                "QDRANT__STORAGE__STORAGE_PATH": os.path.join(folder, "storage"),
                "QDRANT__STORAGE__SNAPSHOTS_PATH": os.path.join(folder, "snapshots"),
                "QDRANT__TELEMETRY_DISABLED": "true",
                "QDRANT__LOG_LEVEL": "WARN",
            }
        )
        self.log = open(os.path.join(folder, "qdrant.log"), "w")
        self.process = subprocess.Popen(
            [binary], cwd=folder, env=env, stdout=self.log, stderr=self.log
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                self.conn = Connection(self.port)
                self.conn.call("GET", "/")
                return
            except OSError:
                time.sleep(0.1)
            if self.process.poll() is not None:
                break
        self.stop()
        raise SystemExit(f"qdrant did not start (log in {folder}/qdrant.log)")

    def cpu(self):
        """The server's CPU seconds so far (user + system)."""
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# ---------------------------------------------------------------- the data


def definition(dim):
    return {
        "vectors": {"size": dim, "distance": "Cosine"},
        "sparse_vectors": {"bm25": {"modifier": "idf"}},
        "hnsw_config": {"on_disk": True},
        "on_disk_payload": True,
    }


INDEX = {"field_name": "group_id", "field_schema": {"type": "keyword", "is_tenant": True}}


def make_bodies(folder, collections, points, dim):
    """Writes each collection's upsert bodies (`c<i>-<n>.json`, 1,000 points each); returns
    the payloads' compact JSON bytes."""
    os.makedirs(folder)
    rng = random.Random(20)
    pool = [repr(round(rng.uniform(-1, 1), 6)) for _ in range(65536)]
    vocabulary = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
        for _ in range(3000)
    ]
    types = ["decision", "convention", "guideline", "session", "error_fix", "note"]
    payload_bytes = 0
    for c in range(collections):
        groups = [f"proj-{g}" for g in range(20)]
        for start in range(0, points, BATCH):
            rows = []
            for i in range(start, min(points, start + BATCH)):
                indices = sorted(rng.sample(range(30000), rng.randint(15, 25)))
                payload = {
                    "group_id": rng.choice(groups),
                    "type": rng.choice(types),
                    "content": " ".join(rng.choices(vocabulary, k=rng.randint(40, 70))),
                    "timestamp": time.strftime(
                        "%Y-%m-%dT%H:%M:%S", time.gmtime(1760000000 + i * 37 + c)
                    )
                    + f".{rng.randrange(10**6):06d}+00:00",
                    "content_hash": f"{rng.getrandbits(256):064x}",
                    "version": rng.randint(1, 5),
                }
                text = json.dumps(payload, separators=(",", ":"))
                payload_bytes += len(text.encode())
                point_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                dense = ",".join(rng.choices(pool, k=dim))
                values = ",".join(repr(round(rng.uniform(0.1, 4), 4)) for _ in indices)
                rows.append(
                    f'{{"id":"{point_id}","vector":{{"":[{dense}],"bm25":{{"indices":'
                    f'{json.dumps(indices, separators=(",", ":"))},"values":[{values}]}}}},'
                    f'"payload":{text}}}'
                )
            with open(os.path.join(folder, f"c{c}-{start // BATCH:04}.json"), "w") as f:
                f.write('{"points":[' + ",".join(rows) + "]}")
    return payload_bytes


def bodies_of(folder, c):
    return sorted(
        os.path.join(folder, n) for n in os.listdir(folder) if n.startswith(f"c{c}-")
    )


# ---------------------------------------------------------------- the ways


def wait_green(conn, names, deadline=3600, poll=0.1):
    end = time.time() + deadline
    while time.time() < end:
        if all(conn.call("GET", f"/collections/{n}")["result"]["status"] == "green" for n in names):
            return
        time.sleep(poll)
    raise SystemExit(f"{names} did not turn green")


def seed(server, names, bodies, dim):
    conn = server.conn
    for c, name in enumerate(names):
        conn.call("PUT", f"/collections/{name}", definition(dim))
        conn.call("PUT", f"/collections/{name}/index?wait=true", INDEX)
        for path in bodies_of(bodies, c):
            with open(path, "rb") as f:
                conn.send("PUT", f"/collections/{name}/points?wait=true", f.read())
    wait_green(conn, names, poll=1)


def plain_export(server, names, folder):
    """Scroll pages of 1,000 points of each collection in turn; the raw bodies to files."""
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    conn = Connection(server.port)
    key = b'"next_page_offset":'
    try:
        for name in names:
            offset, page = None, 0
            while True:
                body = {"limit": PAGE, "with_vector": True, "with_payload": True}
                if offset is not None:
                    body["offset"] = offset
                raw = conn.send("POST", f"/collections/{name}/points/scroll", body)
                with open(os.path.join(folder, f"{name}-{page:04}.json"), "wb") as f:
                    f.write(raw)
                page += 1
                at = raw.rindex(key) + len(key)
                offset = json.loads(raw[at : raw.index(b"}", at)])
                if offset is None:
                    break
    finally:
        conn.close()


def plain_upserts(server, names, bodies, dim):
    """Create, upsert 1,000 at a time with wait=true, index, wait for green: one by one."""
    conn = Connection(server.port)
    try:
        for c, name in enumerate(names):
            conn.call("PUT", f"/collections/{name}", definition(dim))
            for path in bodies_of(bodies, c):
                with open(path, "rb") as f:
                    conn.send("PUT", f"/collections/{name}/points?wait=true", f.read())
            conn.call("PUT", f"/collections/{name}/index?wait=true", INDEX)
            wait_green(conn, [name])
    finally:
        conn.close()


def drop_all(server, names):
    for name in names:
        server.conn.send("DELETE", f"/collections/{name}", ok=(200, 404))


def timed(command, env):
    """Runs `command` under GNU time: (seconds, peak RSS KiB, CPU seconds, stdout, stderr)."""
    began = time.perf_counter()
    run = subprocess.run(
        ["/usr/bin/time", "-f", "%M %U %S", *command], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - began
    if run.returncode != 0:
        raise SystemExit(f"{command}: exit {run.returncode}\n{run.stderr[-3000:]}")
    lines = run.stderr.rstrip().splitlines()
    rss, user, system = lines[-1].split()
    return seconds, int(rss), float(user) + float(system), run.stdout.strip(), "\n".join(lines[:-1])


def timed_call(action):
    began = time.perf_counter()
    cpu = time.process_time()
    action()
    return time.perf_counter() - began, time.process_time() - cpu


def folder_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


# ---------------------------------------------------------------- one binary


def bench(binary, args, aimem, bodies, payload_bytes, work):
    names = [f"logical{i}" for i in range(args.collections)]
    folder = tempfile.mkdtemp(prefix="run-", dir=work)
    server = Server(binary, os.path.join(folder, "server"))
    try:
        return bench_on(server, names, args, aimem, bodies, payload_bytes, folder)
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def bench_on(server, names, args, aimem, bodies, payload_bytes, folder):
    home = os.path.join(folder, "home")
    install = os.path.join(folder, "install")
    root = os.path.join(folder, "backups")
    for path in (home, install, root):
        os.makedirs(path)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": home,
        "NO_COLOR": "1",
        "QDRANT_URL": server.url,
        "AI_MEMORY_BACKUP_DIR": root,
        "AI_MEMORY_INSTALL_DIR": install,
    }
    selected = [a for n in names for a in ("--collection", n)]
    version = server.conn.call("GET", "/").get("version", "?")
    points = args.collections * args.points
    print(
        f"# qdrant {version}; {args.collections} x {args.points} points x {args.dim} dims "
        f"+ bm25, {args.rounds} backup and {args.restore_rounds} restore rounds; "
        f"aimem {aimem}; {os.cpu_count()} cores",
        flush=True,
    )
    started = time.time()
    seed(server, names, bodies, args.dim)
    print(f"# seeded and green in {time.time() - started:.0f} s", flush=True)

    times, rss, cpu, server_cpu = {}, {}, {}, {}
    exported = os.path.join(folder, "plain-export")
    backup = [None]

    def run(way, action):
        before = server.cpu()
        seconds, peak, own_cpu = action()
        times.setdefault(way, []).append(seconds)
        cpu.setdefault(way, []).append(own_cpu)
        server_cpu.setdefault(way, []).append(server.cpu() - before)
        if peak is not None:
            rss[way] = max(rss.get(way, 0), peak)

    def export():
        seconds, own = timed_call(lambda: plain_export(server, names, exported))
        return seconds, None, own

    def aimem_backup():
        seconds, peak, own, out, _ = timed(
            [aimem, "--no-progress", "-q", "backup", "--format", "logical", *selected], env
        )
        if backup[0]:
            shutil.rmtree(backup[0])
        backup[0] = out
        return seconds, peak, own

    def upserts():
        drop_all(server, names)
        seconds, own = timed_call(lambda: plain_upserts(server, names, bodies, args.dim))
        return seconds, None, own

    def aimem_restore():
        drop_all(server, names)
        seconds, peak, own, _, _ = timed(
            [aimem, "--no-progress", "-q", "restore", backup[0], "--force"], env
        )
        return seconds, peak, own

    def check(way):
        for name in names:
            info = server.conn.call("GET", f"/collections/{name}")["result"]
            count = server.conn.call(
                "POST", f"/collections/{name}/points/count", {"exact": True}
            )["result"]["count"]
            if count != args.points or info["status"] != "green" or "group_id" not in info.get(
                "payload_schema", {}
            ):
                raise SystemExit(f"{way}: {name} has {count} points, {info['status']}, "
                                 f"indexes {list(info.get('payload_schema', {}))}")

    for phase, ways in (
        ("backup", {"plain export": export, "aimem backup --format logical": aimem_backup}),
        ("restore", {"plain upserts": upserts, "aimem restore (logical)": aimem_restore}),
    ):
        for round_ in range(args.rounds if phase == "backup" else args.restore_rounds):
            order = list(ways) if round_ % 2 == 0 else list(reversed(ways))
            for way in order:
                wait_green(server.conn, names, poll=1)
                run(way, ways[way])
                if phase == "restore":
                    check(way)
            print(
                f"{phase} round {round_ + 1}: "
                + ", ".join(
                    f"{w} {times[w][-1]:.2f} s (server CPU {server_cpu[w][-1]:.1f} s)"
                    for w in ways
                ),
                flush=True,
            )

    medians = {w: statistics.median(t) for w, t in times.items()}
    print("# medians")
    for way, median in medians.items():
        peak = f", peak RSS {rss[way] / 1024:.1f} MiB" if way in rss else ""
        print(
            f"{way:32} {median:7.2f} s  ({' '.join(f'{t:.2f}' for t in times[way])}); "
            f"own CPU {statistics.median(cpu[way]):.1f} s, "
            f"server CPU {statistics.median(server_cpu[way]):.1f} s{peak}"
        )
    parquet = folder_bytes(os.path.join(backup[0], "qdrant"))
    raw = points * args.dim * 4
    bound = raw + payload_bytes
    backup_ratio = medians["aimem backup --format logical"] / medians["plain export"]
    restore_ratio = medians["aimem restore (logical)"] / medians["plain upserts"]
    peak = max(rss.values()) / 1024

    def verdict(ok):
        return "met" if ok else "NOT met"

    print("# targets")
    print(f"backup / plain export:   {backup_ratio:.2f}x (target <= 0.9x: {verdict(backup_ratio <= 0.9)})")
    print(f"restore / plain upserts: {restore_ratio:.2f}x (target <= 0.9x: {verdict(restore_ratio <= 0.9)})")
    print(
        f"aimem peak RSS: backup {rss['aimem backup --format logical'] / 1024:.1f} MiB, "
        f"restore {rss['aimem restore (logical)'] / 1024:.1f} MiB "
        f"(target <= 64 MiB: {verdict(peak <= 64)})"
    )
    print(
        f"Parquet bytes: {parquet / MiB:.1f} MiB; float32 vectors {raw / MiB:.1f} MiB + payload "
        f"JSON {payload_bytes / MiB:.1f} MiB = {bound / MiB:.1f} MiB "
        f"(ratio {parquet / bound:.2f}; target <= 1: {verdict(parquet <= bound)}); "
        f"plain export's JSON {folder_bytes(exported) / MiB:.1f} MiB",
        flush=True,
    )
    if args.trace:
        trace(server, names, env, aimem, selected, backup[0], args.trace, version)
    return {
        "version": version,
        "times": times,
        "medians": medians,
        "rss": rss,
        "cpu": cpu,
        "server_cpu": server_cpu,
        "parquet": parquet,
        "bound": bound,
    }


def trace(server, names, env, aimem, selected, backup, folder, version):
    """One more backup and restore with -v, their request logs kept in `folder`."""
    os.makedirs(folder, exist_ok=True)
    wait_green(server.conn, names, poll=1)
    seconds, _, _, out, log = timed(
        [aimem, "--no-progress", "-v", "backup", "--format", "logical", *selected], env
    )
    with open(os.path.join(folder, f"backup-{version}.log"), "w") as f:
        f.write(log)
    print(f"# trace: backup with -v {seconds:.2f} s, log in {folder}/backup-{version}.log")
    drop_all(server, names)
    seconds, _, _, _, log = timed(
        [aimem, "--no-progress", "-v", "restore", backup, "--force"], env
    )
    with open(os.path.join(folder, f"restore-{version}.log"), "w") as f:
        f.write(log)
    print(f"# trace: restore with -v {seconds:.2f} s, log in {folder}/restore-{version}.log")
    shutil.rmtree(out, ignore_errors=True)
    for kind in ("backup", "restore"):
        with open(os.path.join(folder, f"{kind}-{version}.log")) as f:
            summarize(kind, f.read(), names)


def summarize(kind, log, names):
    """Requests of a -v log by kind: how many, their total and median time."""
    by = {}
    for line in log.splitlines():
        if not line.startswith("[aimem] ") or " -> " not in line:
            continue
        request, rest = line[len("[aimem] "):].split(" -> ", 1)
        for name in names:
            request = request.replace(f"/{name}/", "/{c}/").replace(f"/{name}", "/{c}")
        ms = float(rest.rsplit(", ", 1)[1].split()[0])
        by.setdefault(request, []).append(ms)
    for request, ms in sorted(by.items(), key=lambda kv: -sum(kv[1])):
        print(
            f"# trace {kind}: {request:48} x{len(ms):4}, total {sum(ms) / 1000:6.2f} s, "
            f"median {statistics.median(ms):6.0f} ms, max {max(ms):6.0f} ms"
        )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--qdrant-bin", action="append", default=[])
    parser.add_argument("--collections", type=int, default=4)
    parser.add_argument("--points", type=int, default=40000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--restore-rounds", type=int, help="rounds of restores (default: --rounds; each "
        "waits for the HNSW indexes, minutes on a small machine)"
    )
    parser.add_argument("--trace", metavar="DIR", help="keep -v logs of one more run here")
    args = parser.parse_args()
    if args.restore_rounds is None:
        args.restore_rounds = args.rounds
    if args.trace:
        args.trace = os.path.abspath(args.trace)
    binaries = args.qdrant_bin or [os.environ.get("QDRANT_BIN") or sys.exit(
        "set QDRANT_BIN or --qdrant-bin to a qdrant binary")]
    aimem = os.path.abspath(os.environ.get("AIMEM", "target/release/aimem"))

    def stop(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    work = tempfile.mkdtemp(prefix="aimem-real-logical-")
    try:
        started = time.time()
        bodies = os.path.join(work, "bodies")
        payload_bytes = make_bodies(bodies, args.collections, args.points, args.dim)
        print(
            f"# made {args.collections} x {args.points} points in {time.time() - started:.0f} s "
            f"({folder_bytes(bodies) / MiB:.0f} MiB of upsert bodies)",
            flush=True,
        )
        results = [bench(b, args, aimem, bodies, payload_bytes, work) for b in binaries]
        if len(results) > 1:
            print("# summary")
            for r in results:
                m = r["medians"]
                print(
                    f"qdrant {r['version']}: backup {m['aimem backup --format logical']:.2f} s / "
                    f"{m['plain export']:.2f} s, restore {m['aimem restore (logical)']:.2f} s / "
                    f"{m['plain upserts']:.2f} s, peak RSS {max(r['rss'].values()) / 1024:.1f} MiB, "
                    f"Parquet {r['parquet'] / r['bound']:.2f} of the bound"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
