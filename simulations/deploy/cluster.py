"""A SuperLink and N SuperNodes as separate processes on this machine, driven by `flwr run`.

The same commands as on real machines (docs/DEPLOY.md), on loopback: TLS from a private CA
(``certs.sh``), SuperNode authentication with registered EC keys, runtime dependency
installation disabled (the virtual environment already holds everything). ``--insecure``
turns TLS off and, since Flower's SuperNode authentication needs TLS, authentication too. Every
process is started in its own session so that stopping it by its PID also stops the
ServerApp/ClientApp processes it spawned; nothing is ever stopped by name.

    python -m simulations.deploy.cluster --nodes 3 -- num-rounds=3 dataset='"digits"'
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # flower-superlink, flower-supernode, flwr of this venv
CONNECTION = "fedlite"


def free_port() -> int:
    """A port free right now on loopback (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """Processes of one local deployment; ``stop()`` (or ``with``) ends them all by PID."""

    def __init__(self, workdir: str | os.PathLike, *, tls: bool = True, auth: bool = True,
                 host: str = "127.0.0.1", port: int | None = None,
                 cert_names: tuple[str, ...] = ()) -> None:
        if auth and not tls:
            raise ValueError("SuperNode authentication needs TLS (Flower's SuperLink refuses "
                             "--enable-supernode-auth with --insecure): turn auth off too")
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tls, self.auth, self.host = tls, auth, host
        self.cert_names = cert_names  # extra SANs: the addresses remote SuperNodes dial
        self.port = port or free_port()
        self.procs: dict[str, subprocess.Popen] = {}
        self.home = self.dir / "flwr-home"  # FLWR_HOME: connections, installed FABs
        self.home.mkdir(exist_ok=True)
        if not tls:
            print("WARNING: TLS is off (--insecure): model updates travel in clear text; use it "
                  "only on a trusted network", file=sys.stderr)
        if not auth:
            why = " (Flower allows it only with TLS)" if not tls else ""
            print(f"WARNING: SuperNode authentication is off{why}: any SuperNode that reaches "
                  "the SuperLink's port can join", file=sys.stderr)

    # -- environment ------------------------------------------------------------------------
    @property
    def address(self) -> str:
        """Where this machine reaches the SuperLink (loopback when it listens everywhere)."""
        return f"{'127.0.0.1' if self.host == '0.0.0.0' else self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ, FLWR_HOME=str(self.home),
                   PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                   FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1")
        # One torch thread per process: the ClientApps of several nodes share the cores.
        env.setdefault("OMP_NUM_THREADS", "1")
        return env

    def tls_args(self) -> list[str]:
        return ["--root-certificates", str(self.dir / "certs" / "ca.crt")] if self.tls \
            else ["--insecure"]

    def write_connection(self) -> None:
        """``[superlink.fedlite]`` in ``$FLWR_HOME/config.toml``, what ``flwr`` dials."""
        lines = ['[superlink]', 'default = "local"', '', '[superlink.local]',
                 'address = ":local:"', '', f'[superlink.{CONNECTION}]',
                 f'address = "{self.address}"']
        lines.append(f'root-certificates = "{self.dir / "certs" / "ca.crt"}"' if self.tls
                     else "insecure = true")
        (self.home / "config.toml").write_text("\n".join(lines) + "\n")

    # -- processes --------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env(),
                                cwd=self.dir, start_new_session=True)
        log.close()
        self.procs[name] = proc
        (self.dir / f"{name}.pid").write_text(f"{proc.pid}\n")
        return proc

    def log(self, name: str) -> str:
        path = self.dir / f"{name}.log"
        return path.read_text(errors="replace") if path.is_file() else ""

    def start_superlink(self, timeout: float = 60.0) -> None:
        if self.tls and not (self.dir / "certs" / "server.crt").is_file():
            subprocess.run(["bash", str(Path(__file__).with_name("certs.sh")),
                            str(self.dir / "certs"), *self.cert_names], check=True,
                           capture_output=True, timeout=60)
        argv = [str(BIN / "flower-superlink"), "--host", self.host, "--port", str(self.port),
                "--disable-runtime-dependency-installation"]
        if self.tls:
            certs = self.dir / "certs"
            argv += ["--ssl-ca-certfile", str(certs / "ca.crt"),
                     "--ssl-certfile", str(certs / "server.crt"),
                     "--ssl-keyfile", str(certs / "server.key")]
        else:
            argv.append("--insecure")
        if self.auth:
            argv.append("--enable-supernode-auth")
        self._spawn("superlink", argv)
        self.write_connection()
        self._wait_for_port(timeout)

    def _wait_for_port(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs["superlink"].poll() is not None:
                raise RuntimeError("the SuperLink exited:\n" + self.log("superlink")[-3000:])
            with socket.socket() as sock:
                sock.settimeout(1.0)
                if sock.connect_ex((self.address.rsplit(":", 1)[0], self.port)) == 0:
                    return
            time.sleep(0.3)
        raise TimeoutError(f"the SuperLink did not listen on {self.address} within {timeout:g}s")

    def node_key(self, index: int) -> Path:
        """An EC key pair in OpenSSH format (what ``--auth-supernode-private-key`` reads)."""
        key = self.dir / "keys" / f"node{index}"
        if not key.is_file():
            key.parent.mkdir(exist_ok=True)
            subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-b", "384", "-N", "",
                            "-C", f"fedlite-node{index}", "-f", str(key)],
                           check=True, timeout=30)
        return key

    def register(self, index: int, timeout: float = 60.0) -> None:
        """``flwr supernode register``: only registered keys may join
        (``--enable-supernode-auth``)."""
        self.flwr(["supernode", "register", str(self.node_key(index)) + ".pub", CONNECTION],
                  timeout=timeout)

    def start_supernode(self, index: int, partition_id: int, num_partitions: int,
                        max_wait: float = 60.0, superlink: str | None = None,
                        prefix: tuple[str, ...] = ()) -> subprocess.Popen:
        """``superlink``: the address to dial (default: this machine's); ``prefix``: e.g.
        ``ip netns exec NAME`` to run the SuperNode as another host."""
        argv = [*prefix, str(BIN / "flower-supernode"), "--superlink", superlink or self.address,
                *self.tls_args(),
                "--node-config", f"partition-id={partition_id} num-partitions={num_partitions}",
                "--port", str(free_port()), "--max-wait-time", f"{max_wait:g}"]
        if self.auth:
            argv += ["--auth-supernode-private-key", str(self.node_key(index))]
        return self._spawn(f"supernode{index}", argv)

    def flwr(self, args: list[str], timeout: float) -> subprocess.CompletedProcess:
        done = subprocess.run([str(BIN / "flwr"), *args], capture_output=True, text=True,
                              env=self.env(), cwd=PROJECT_ROOT, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"flwr {' '.join(args)} failed ({done.returncode}):\n"
                               f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def start_run(self, run_config: str) -> subprocess.Popen:
        """``flwr run . fedlite --stream`` in the background (stopped with the rest by PID)."""
        return self._spawn("flwr-run", [str(BIN / "flwr"), "run", str(PROJECT_ROOT), CONNECTION,
                                        "--stream", "--run-config", run_config])

    def run(self, run_config: str, timeout: float) -> int:
        """``flwr run`` in the foreground, bounded by ``timeout``; returns its exit status."""
        started = time.monotonic()
        proc = self.start_run(run_config)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop("flwr-run")
            raise TimeoutError(f"flwr run did not end within {timeout:g}s") from None
        print(f"flwr run finished in {time.monotonic() - started:.0f} s (exit {code}); "
              f"log {self.dir / 'flwr-run.log'}")
        return code

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Stop one process and its session (the apps it spawned), by PID; kill if it lingers."""
        proc = self.procs.get(name)
        if proc is None:
            return
        for signum in (sig, signal.SIGKILL):
            try:
                os.killpg(proc.pid, signum)  # the session's group id is the process's PID
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=timeout)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # children that outlived their parent still carry the group id
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=timeout)

    def stop_all(self) -> None:
        for name in [n for n in self.procs if n != "superlink"] + ["superlink"]:
            self.stop(name)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--workdir", help="certificates, keys, logs (default: a temp dir)")
    parser.add_argument("--insecure", action="store_true",
                        help="no TLS (clear text; only on a trusted network); implies --no-auth, "
                             "since Flower's SuperNode authentication needs TLS")
    parser.add_argument("--no-auth", action="store_true", help="let any SuperNode join")
    parser.add_argument("--timeout", type=float, default=900.0, help="bound on `flwr run`")
    parser.add_argument("run_config", nargs="*", help="run-config overrides: key=value (TOML)")
    args = parser.parse_args(argv)
    workdir = args.workdir or tempfile.mkdtemp(prefix="fedlite-deploy-")
    overrides = " ".join([f"num-clients={args.nodes}", *args.run_config])
    # SIGTERM (kill <pid>) ends the run like Ctrl-C: the `with` below stops every process.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    with Cluster(workdir, tls=not args.insecure,
                 auth=not (args.no_auth or args.insecure)) as cluster:
        cluster.start_superlink()
        print(f"SuperLink on {cluster.address} (pid {cluster.procs['superlink'].pid}), "
              f"TLS {'on' if cluster.tls else 'OFF'}, node auth {'on' if cluster.auth else 'off'}")
        for i in range(args.nodes):
            if cluster.auth:
                cluster.register(i)
            proc = cluster.start_supernode(i, i, args.nodes)
            print(f"SuperNode {i} (partition {i} of {args.nodes}) pid {proc.pid}")
        code = cluster.run(overrides, timeout=args.timeout)
        print(f"logs, certificates and keys in {workdir}")
        return code


if __name__ == "__main__":
    sys.exit(main())
