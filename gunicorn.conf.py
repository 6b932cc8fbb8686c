"""gunicorn settings for the panel: gunicorn -c gunicorn.conf.py 'webpanel:create_app()'."""

import os

from recorder import limits

# The appliance binds a local socket ("unix:/run/picorder-panel/panel.sock") that nginx
# serves: gthread reads a request with a blocking socket, so without a buffering front
# server a few slow clients hold every thread (security review M2).
bind = os.environ.get("PICORDER_PANEL_BIND", "0.0.0.0:8080")
workers = int(os.environ.get("PICORDER_PANEL_WORKERS", "2"))
# Threads, so a live stream or a long download holds one thread, not a whole worker.
# Video responses never take the last PANEL_THREADS_FOR_PAGES of them (webpanel/streams.py).
worker_class = "gthread"
threads = int(os.environ.get("PICORDER_PANEL_THREADS", limits.PANEL_THREADS))
# Import the app once in the master and fork the workers from it: on a Pi (and under
# emulation) each import of Flask and the panel costs seconds at boot, and the forked
# workers share those pages.  The factory opens no connection and starts no thread.
preload_app = True
# gthread workers heartbeat from their main loop, so long video responses do not
# trip this; it only catches a worker that is truly stuck.
timeout = 60
graceful_timeout = 10
keepalive = 5
# Forwarded headers are trusted from no TCP peer.  gunicorn never takes the client's
# address from X-Forwarded-For; the panel does, and only for requests that came over
# the local socket that nginx uses (webpanel/app.py, trust_local_proxy).
forwarded_allow_ips = ""
accesslog = os.environ.get("PICORDER_PANEL_ACCESSLOG") or None
errorlog = "-"
loglevel = os.environ.get("PICORDER_PANEL_LOGLEVEL", "info")
proc_name = "picorder-panel"


def post_fork(server, worker):
    """A worker ends at once when its master dies, even by SIGKILL (recorder.children)."""
    import signal
    from recorder.children import end_with_parent
    end_with_parent(signal.SIGKILL, server.pid)
