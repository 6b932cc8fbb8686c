"""The appliance's panel stack for tests and benchmarks: gunicorn on a local socket behind
the nginx site of the picorder_nginx role, rendered from the role's own template."""

import http.client
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import jinja2
import yaml

from helpers import PROJECT

NGINX_ROLE = PROJECT / "ansible" / "roles" / "picorder_nginx"
NGINX = "/usr/sbin/nginx"


def render_site(listen: list[str], socket: Path, **overrides) -> str:
    """The role's site file, with its defaults, for these addresses and this socket."""
    values = {k: v for k, v in yaml.safe_load((NGINX_ROLE / "defaults/main.yml").read_text()).items()
              if not (isinstance(v, str) and "{{" in v)}
    values.update(picorder_nginx_listen=listen, picorder_nginx_panel_socket=str(socket),
                  ansible_managed="rendered by tests/helpers/front.py", **overrides)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["comment"] = lambda text: "".join(f"# {line}\n" for line in text.splitlines())
    return env.from_string((NGINX_ROLE / "templates/picorder-site.conf.j2").read_text()).render(values)


def nginx_conf(work: Path, site: Path) -> str:
    """A whole nginx.conf around the site, like Debian's but private to `work`."""
    user = "user root;\n" if os.geteuid() == 0 else ""   # workers must reach the socket
    temp = "\n".join(f"    {kind}_temp_path {work}/{kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"{user}worker_processes auto;\npid {work}/nginx.pid;\n"
            f"error_log {work}/error.log warn;\ndaemon off;\n"
            "events { worker_connections 768; }\n"
            f"http {{\n    access_log off;\n{temp}\n    include {site};\n}}\n")


class FrontServer:
    """nginx with the role's site, in a private directory."""

    def __init__(self, work: Path, listen: str, socket: Path, **overrides):
        self.work, self.listen, self.socket, self.overrides = work, listen, socket, overrides
        self.proc: subprocess.Popen | None = None

    def start(self) -> "FrontServer":
        if not Path(NGINX).exists():
            raise RuntimeError("nginx is not installed: run scripts/setup.sh test")
        self.work.mkdir(parents=True, exist_ok=True)
        site = self.work / "picorder-site.conf"
        site.write_text(render_site([self.listen], self.socket, **self.overrides))
        conf = self.work / "nginx.conf"
        conf.write_text(nginx_conf(self.work, site))
        check = subprocess.run([NGINX, "-t", "-q", "-c", str(conf)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t: {check.stderr}")
        self.proc = subprocess.Popen([NGINX, "-c", str(conf)], stderr=subprocess.DEVNULL)
        return self

    def stop(self) -> None:
        stop(self.proc)


def start_gunicorn(data: Path, bind: str, log: Path, **env_extra) -> subprocess.Popen:
    """The panel under gunicorn.conf.py, as the appliance runs it."""
    env = dict(os.environ, PICORDER_DATA=str(data), PICORDER_PANEL_BIND=bind,
               PICORDER_PANEL_LOGLEVEL="warning", PYTHONUNBUFFERED="1",
               **{k: str(v) for k, v in env_extra.items()})
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "gunicorn", "-c",
                                 str(PROJECT / "gunicorn.conf.py"), "webpanel:create_app()"],
                                cwd=PROJECT, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:          # it answers (nginx says 502 until gunicorn listens)
                return
            problem = exc
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            problem = exc
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer in {timeout} s: {problem}")
        time.sleep(0.2)


def sign_in(port: int, username: str, password: str) -> str:
    """Sign in through the login form as a browser does; return the session cookie."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/auth/login", headers={"Accept": "text/html"})
    resp = conn.getresponse()
    html = resp.read().decode()
    cookie = resp.getheader("Set-Cookie").split(";")[0]
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    body = urllib.parse.urlencode({"username": username, "password": password, "csrf_token": token})
    conn.request("POST", "/auth/login", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie, "Accept": "text/html"})
    resp = conn.getresponse()
    resp.read()
    if resp.status != 302:
        raise RuntimeError(f"sign-in as {username}: HTTP {resp.status}")
    return resp.getheader("Set-Cookie").split(";")[0]


def stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
