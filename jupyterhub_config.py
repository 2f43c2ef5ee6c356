# JupyterHub for miqa_nb's reviewers.
#
# Start it with `miqa-nb hub --catalog CATALOG [--port 8000] [--ip 127.0.0.1]`, which
# runs `jupyterhub -f jupyterhub_config.py` in a working folder of its own (the hub's
# database and cookie secret live there) with MIQA_NB_CATALOG and MIQA_NB_PROXY set;
# or run JupyterHub with this file yourself, with those variables set.
#
# What it does: reviewers sign in at the hub with their catalog user name and password
# (set with `miqa-nb users passwd NAME`, or by a superuser on the dashboard); the hub
# starts `miqa-nb serve` for each of them, whose page is the reviewer dashboard; all
# of them share the one catalog. A reviewer's server admits that reviewer only (the
# hub's OAuth), and its pages act as that reviewer (JUPYTERHUB_USER).
#
# Every option below can be changed here, or on the command line of `jupyterhub`
# (`--JupyterHub.port=8443`); command-line options win.

import os

from miqa_nb.hub import CatalogAuthenticator, ReviewerSpawner, find_proxy

c = get_config()  # noqa: F821 - JupyterHub defines it while it reads this file

# --- Who signs in -------------------------------------------------------------------
# The catalog's users, with their catalog passwords (checked with argon2 off the hub's
# event loop; failed sign-ins are braked: 10 a minute per name and per address).
# A user without a password cannot sign in: give one with `miqa-nb users passwd`.
# Any other JupyterHub authenticator the lab uses (LDAP, OAuth, ...) works as well,
# when the names it gives are the catalog's user names: a reviewer's pages act as the
# catalog user of their hub name.
c.JupyterHub.authenticator_class = CatalogAuthenticator
# The catalog (what MIQA_NB_CATALOG names): a DuckDB file serves reviewers on this one
# host; a PostgreSQL database (postgresql://miqa@db.lab:5432/miqa, its password in
# ~/.pgpass or PGPASSWORD rather than here) serves many at once, on any host. The same
# one is handed to every reviewer's server below.
catalog = os.environ.get("MIQA_NB_CATALOG", "miqa.duckdb")
c.CatalogAuthenticator.catalog = catalog
# Hub administrators may see, start and stop the reviewers' servers on the hub's
# admin page (they still cannot open another reviewer's dashboard: a server admits
# its own reviewer only). Names are catalog users, e.g. {"admin"}.
c.Authenticator.admin_users = set()

# --- Each reviewer's server ---------------------------------------------------------
# `miqa-nb serve` on the dashboard, run as the hub's own account (no system user per
# reviewer). It gets the catalog, every MIQA_NB_* variable of the hub (data roots:
# MIQA_NB_DATA_ROOTS; where uploads go: MIQA_NB_UPLOAD_DIR; ...) and JupyterHub's own
# variables (its address, its reviewer, its OAuth client).
c.JupyterHub.spawner_class = ReviewerSpawner
c.ReviewerSpawner.catalog = catalog
# Seconds a server may take to start: it renders the dashboard once before it answers.
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 120
# A link to a reviewer's dashboard (/user/NAME/?project=P) starts their server when it
# is not running, instead of a page asking them to start it.
c.JupyterHub.implicit_spawn_seconds = 0.5
# Stop a reviewer's server when they sign out (its pages end, its claims are given up).
c.JupyterHub.shutdown_on_logout = True
# Stop the reviewers' servers when the hub stops (False keeps them running across a
# restart of the hub).
c.JupyterHub.cleanup_servers = True

# --- Where the hub listens ----------------------------------------------------------
# The public address (through configurable-http-proxy). 127.0.0.1 is this machine
# only; to serve a network, listen on its address with TLS:
#   c.JupyterHub.ip = "0.0.0.0"
#   c.JupyterHub.ssl_cert = "/etc/ssl/hub.crt"
#   c.JupyterHub.ssl_key = "/etc/ssl/hub.key"
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = 8000
# The hub's own API (its servers call it) and the proxy's API: loopback only.
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = 8081
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:8001"

# --- The proxy ----------------------------------------------------------------------
# configurable-http-proxy (Node.js): MIQA_NB_PROXY, else the one scripts/setup.sh
# installs into .venv/node, else the one on PATH.
c.ConfigurableHTTPProxy.command = [find_proxy()]

# --- The hub's own state ------------------------------------------------------------
# Relative to the hub's working folder (`miqa-nb hub --state-dir`): which servers run,
# OAuth clients and tokens. Not the catalog: reviews are in the catalog only.
c.JupyterHub.db_url = "sqlite:///jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "jupyterhub_cookie_secret"
