"""The reviewer dashboard that ``miqa-nb serve`` shows (``voila_app/dashboard.ipynb``).

It puts the panels together: a header naming the user, the status bar
(:mod:`~miqa_nb.dashboard._status`), the project list (:mod:`~miqa_nb.dashboard.projects`)
and, for the open project, tabs: the scans overview (:mod:`~miqa_nb.dashboard.overview`),
the review view, and -- for superusers and the project's creator only -- the
administration panel (:mod:`~miqa_nb.dashboard.admin`) with the upload panel
(:mod:`~miqa_nb.dashboard.upload`). Below the project list, for users who may import
into some project (its reviewers and creator, superusers), a folded "Staging area"
lists the sessions waiting in the prearchive with previews and XNAT's actions
(:mod:`~miqa_nb.dashboard.staging`).

The review view is built by :func:`review_view`, the one place where the review
panel plugs in: the dashboard calls :meth:`Dashboard.open_review` when a scan is
clicked in the overview, and :meth:`Dashboard.resume_review` when the Review tab is
chosen before any scan was: the session then resumes where the user left off in the
project (``Catalog.place``). Choosing the Scans tab again re-reads the overview, so it
shows the decisions just made. While a review is open the dashboard follows its
session: the project list's progress and the status line ("Reviewing scan S (E) of
project P.") change with each decision, each scan and each refresh that brings a
colleague's decisions.

:meth:`Dashboard.from_environment` is the notebook's entry point: it reads the
catalog from ``MIQA_NB_CATALOG`` and the user as
:func:`~miqa_nb.dashboard.model.resolve_user` says, and shows a readable refusal
instead of the dashboard when the user is unknown.
"""

from __future__ import annotations

import atexit
import html
import importlib
import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import parse_qs

import ipywidgets as widgets

from miqa_nb.catalog import Catalog, default_catalog_path
from miqa_nb.core import permissions
from miqa_nb.core.signin import SERVER_URL_ENV
from miqa_nb.dashboard._status import StatusBar
from miqa_nb.dashboard.admin import AdminPanel
from miqa_nb.dashboard.lifeline import IDLE_MINUTES_ENV, SERVE_URL_ENV
from miqa_nb.dashboard.model import (
    IDENTITY_ENV,
    AdminActions,
    default_thumbnail_dir,
    resolve_user,
)
from miqa_nb.dashboard.overview import Overview
from miqa_nb.dashboard.projects import ProjectList
from miqa_nb.dashboard.staged import StagingActions
from miqa_nb.dashboard.staging import StagingPanel
from miqa_nb.dashboard.upload import UploadPanel
from miqa_nb.dashboard.uploads import UploadStager, default_upload_dir

__all__ = ["Dashboard", "ReviewFactory", "preload", "review_view"]

log = logging.getLogger("miqa_nb.dashboard")

#: ``(catalog, user, project, experiment, scan) -> widget`` showing one scan for review;
#: experiment and scan None: resume where the user left off.
ReviewFactory = Callable[[Catalog, str, str, str | None, str | None], widgets.Widget]

OVERVIEW_TAB, REVIEW_TAB, ADMIN_TAB = 0, 1, 2

#: Page-wide look of the dashboard's HTML pieces (tables, headings); fixed text.
STYLE = """<style>
.miqa-dashboard table {border-collapse: collapse; margin: 0.3em 0;}
.miqa-dashboard th, .miqa-dashboard td {padding: 2px 10px; border-bottom: 1px solid #ddd;
  text-align: left;}
.miqa-dashboard h3, .miqa-dashboard h4 {margin: 0.5em 0 0.2em 0;}
.miqa-overview-row {border-bottom: 1px solid #eee;}
</style>"""


def review_view(
    catalog: Catalog,
    user: str,
    project: str,
    experiment: str | None = None,
    scan: str | None = None,
) -> widgets.Widget:
    """The review view of one scan: the colleague's :class:`ReviewPanel` over a new
    :class:`ReviewSession` of the project, opened on that scan (``scan`` None: where
    the user left off, else the first scan of the queue).

    This is the single place the review panel plugs in. If the panel cannot be built
    (an unexpected error), a readable placeholder (``miqa-review-slot``) names the scan
    and the traceback goes to the log.
    """
    try:
        from miqa_nb.review.session import ReviewSession
        from miqa_nb.widgets.panel import ReviewPanel

        resume = experiment is None or scan is None
        session = ReviewSession(
            catalog, project, user, filter="all", resume=resume, idle_minutes=idle_minutes()
        )
        if not resume:
            session.open((str(experiment), str(scan)))
        return ReviewPanel(session, keys="page")  # the page is the review page
    except Exception:
        log.exception("the review panel could not be built; showing the placeholder")
    return review_placeholder(project, experiment, scan)


def preload(*, volume_view: bool = True) -> None:
    """Import what a review page needs before any page asks for it.

    The served notebook calls this in its first cell, which a pre-heated kernel runs
    while it waits in Voila's pool (the second cell waits for the page's request): the
    review panel's modules, and ipyvolume for the 3D view (several seconds of imports
    on a small machine), are then loaded before the reviewer opens the page.
    """
    for module in ("miqa_nb.review.session", "miqa_nb.widgets.panel"):
        importlib.import_module(module)
    if volume_view:
        try:
            importlib.import_module("ipyvolume")
        except Exception:  # the 3D button says so when pressed
            log.exception("ipyvolume could not be imported; the 3D view will say why")


def idle_minutes(environ: Mapping[str, str] | None = None) -> float:
    """After how many minutes without an action a served review gives its claims up:
    ``MIQA_NB_IDLE_MINUTES`` (``miqa-nb serve --idle-minutes``), default 10."""
    from miqa_nb.review.sync import IDLE_MINUTES

    value = (os.environ if environ is None else environ).get(IDLE_MINUTES_ENV, "")
    try:
        minutes = float(value) if value.strip() else IDLE_MINUTES
    except ValueError:
        log.warning(
            "%s=%r is not a number of minutes; using %g", IDLE_MINUTES_ENV, value, IDLE_MINUTES
        )
        return IDLE_MINUTES
    return minutes if minutes > 0 else IDLE_MINUTES


def review_placeholder(project: str, experiment: str | None, scan: str | None) -> widgets.HTML:
    """A placeholder naming the scan (``miqa-review-slot``); every name is escaped."""
    which = (
        f"<p>Scan <b>{html.escape(scan)}</b> of experiment <b>{html.escape(experiment)}</b> "
        f"in project <b>{html.escape(project)}</b>.</p>"
        if experiment is not None and scan is not None
        else f"<p>Project <b>{html.escape(project)}</b>.</p>"
    )
    placeholder = widgets.HTML(
        "<p><b>Review view</b>: the review panel could not be shown; "
        "the server log says why.</p>" + which
    )
    placeholder.add_class("miqa-review-slot")
    return placeholder


def _log_to_server() -> None:
    """Send miqa_nb's log records to the kernel process's real stderr.

    Under Voila that is the server's output; ``sys.stderr`` would be the page.
    """
    logger = logging.getLogger("miqa_nb")
    if not any(getattr(h, "_miqa_server_log", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.__stderr__)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        setattr(handler, "_miqa_server_log", True)  # noqa: B010 - a marker attribute
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


class Dashboard:
    """The whole dashboard for one user (``miqa-dashboard``).

    Parameters
    ----------
    catalog : Catalog
    user : str or None
        The page's user; None shows ``refusal`` instead of the dashboard.
    refusal : str
        Why there is no dashboard (``miqa-refusal``).
    thumbnail_dir, upload_dir : path-like, optional
        Default beside the catalog (see :mod:`miqa_nb.dashboard.model`).
    review_factory : callable, optional
        Builds the review view; default :func:`review_view`.
    background : bool
        Load thumbnails in a worker thread (False in tests).
    signed_in : bool
        The page is served behind sign-in (``miqa-nb serve``, or its server spawned by
        JupyterHub, whose ``logout`` signs out of the hub): the header offers
        sign-out, a refusal offers sign-in.
    server_url : str, optional
        The dashboard's address, which the sign-in links made in the administration
        start with (served: ``MIQA_NB_SERVER_URL`` if set, else the address the server
        gives its kernels, ``MIQA_NB_SERVE_URL``).
    """

    def __init__(
        self,
        catalog: Catalog,
        user: str | None,
        *,
        refusal: str = "",
        thumbnail_dir: str | os.PathLike[str] | None = None,
        upload_dir: str | os.PathLike[str] | None = None,
        review_factory: ReviewFactory | None = None,
        background: bool = True,
        signed_in: bool = False,
        server_url: str | None = None,
    ) -> None:
        self.catalog = catalog
        self.user = user
        self.server_url = server_url
        self.thumbnail_dir = Path(thumbnail_dir or default_thumbnail_dir(catalog.path))
        self.upload_dir = Path(upload_dir or default_upload_dir(catalog.path))
        self.review_factory = review_factory or review_view
        self.background = background
        self.status = StatusBar()
        self.status.widget.add_class("miqa-dashboard-status")
        self.project: str | None = None
        self.overview: Overview | None = None
        self.admin: AdminPanel | None = None
        self.upload: UploadPanel | None = None
        self.review: widgets.Widget | None = None
        self._waiting: widgets.Widget | None = None  # the Review tab's "not started yet"
        self._unwatch: Callable[[], None] | None = None  # stops following the review
        self.projects: ProjectList | None = None
        self.project_area = widgets.VBox()
        self.project_area.add_class("miqa-project-area")
        if user is None:
            message = widgets.HTML(
                f'<div style="padding:1em;font-size:1.1em"><b>Cannot open the dashboard.</b> '
                f"{html.escape(refusal)}"
                # relative to the page's address: the server's base URL
                + (" <a class='miqa-signin' href='login'>Sign in</a>" if signed_in else "")
                + "</div>"
            )
            message.add_class("miqa-refusal")
            self.widget = widgets.VBox([message])
            self.widget.add_class("miqa-dashboard")
            return
        header = widgets.HTML(
            STYLE + f"<h2 style='margin:0.2em 0'>MIQA review</h2><div>Signed in as "
            f"<b class='miqa-user'>{html.escape(user)}</b> · catalog "
            f"<code>{html.escape(Path(catalog.name).name if catalog.location == str(catalog.path) else catalog.name)}</code>"
            + (" · <a class='miqa-signout' href='logout'>Sign out</a>" if signed_in else "")
            + "</div>"
        )
        header.add_class("miqa-dashboard-header")
        self.projects = ProjectList(
            catalog, user, self.status.guard(self.open_project), self.status
        )
        self.staging: StagingPanel | None = None
        self.staging_area: widgets.Accordion | None = None
        staged = StagingActions(catalog, user)
        parts: list[widgets.Widget] = [header, self.status.widget, self.projects.widget]
        if staged.allowed:
            self.staging_area = widgets.Accordion(selected_index=None)
            self.staging_area.add_class("miqa-staging-area")
            self.staging = StagingPanel(
                staged,
                self.status,
                on_change=self.refresh,
                on_list=self._staging_title,
                background=background,
            )
            self.staging_area.children = [self.staging.widget]
            self._staging_title(len(self.staging.entries))
            parts.append(self.staging_area)
        self.widget = widgets.VBox([*parts, self.project_area])
        self.widget.add_class("miqa-dashboard")

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str] | None = None,
        query_string: str | None = None,
    ) -> Dashboard:
        """The dashboard for the page being served (see :mod:`miqa_nb.serve`).

        Served, the kernel waits until a signed-in page takes it and asks the server
        whose page it is (:func:`~miqa_nb.dashboard.lifeline.served_page`); the page's
        query string only chooses what to show (``project=P``), never who is shown it.
        """
        from miqa_nb.dashboard.lifeline import served_page

        _log_to_server()
        env = os.environ if environ is None else environ
        catalog = Catalog(env.get("MIQA_NB_CATALOG") or default_catalog_path())
        page = served_page(env) if query_string is None else None
        if page is not None:
            query_string = page.query
        try:
            identity = resolve_user(
                catalog, env, query_string, page_user=page.user if page else None
            )
        except Exception as exc:  # e.g. an unreadable catalog: say so on the page
            log.exception("cannot resolve the dashboard's user")
            from miqa_nb.dashboard.model import readable_error

            return cls(catalog, None, refusal=readable_error(exc))
        if identity.user is None:
            log.info("dashboard refused: %s", identity.refusal)
        else:
            log.info("dashboard opened for %s", identity.user)
        dashboard = cls(
            catalog,
            identity.user,
            refusal=identity.refusal or "",
            # served (miqa-nb serve, alone or spawned by JupyterHub): the server signs out
            signed_in=env.get(IDENTITY_ENV) in ("server", "hub"),
            server_url=env.get(SERVER_URL_ENV) or env.get(SERVE_URL_ENV) or None,
        )
        dashboard.watch_page(env)
        project = parse_qs(query_string or "").get("project", [""])[-1].strip()
        if project and identity.user is not None:
            dashboard.status.guard(dashboard.start_review)(project)
        return dashboard

    def show(self) -> None:
        """Display the dashboard in the notebook (or Voila page)."""
        from IPython.display import display

        display(self.widget)

    # ------------------------------------------------------------------ actions

    def open_project(self, project: str, *, overview: bool = True) -> None:
        """Show a project's overview (and administration, for those allowed).

        With ``overview=False`` the Scans tab is built when first shown, so that a
        review opened straight away does not share the machine with thumbnailing.
        """
        assert self.user is not None
        permissions.require_read(self.catalog.standing(self.user, project))
        self.close_project()
        self.project = project
        self.scans_box = widgets.VBox([])
        if overview:
            self._build_overview()
        self.review = widgets.HTML(
            "<p>Open a scan from the overview, or stay here: the review starts where "
            "you left off.</p>"
        )
        self.review.add_class("miqa-review-slot")
        self._waiting = self.review
        self.review_box = widgets.VBox([self.review])
        self.review_box.add_class("miqa-review-area")
        children: list[widgets.Widget] = [self.scans_box, self.review_box]
        titles = ["Scans", "Review"]
        actions = AdminActions(self.catalog, self.user, project, server_url=self.server_url)
        if actions.allowed:
            stager = UploadStager(self.catalog, self.user, self.upload_dir)
            self.upload = UploadPanel(stager, project, self.status, on_change=self.refresh)
            self.admin = AdminPanel(
                actions,
                self.status,
                on_change=self.refresh,
                upload=self.upload.widget,
                on_scan_types=self.upload.refresh_scan_types,
            )
            children.append(self.admin.widget)
            titles.append("Administration")
        self.tabs = widgets.Tab(children=children, titles=titles)
        self.tabs.add_class("miqa-project-tabs")
        self.tabs.observe(self.status.guard(self._tab_changed), names="selected_index")
        title = widgets.HTML(f"<h3 style='margin:0.5em 0'>{html.escape(project)}</h3>")
        title.add_class("miqa-project-title")
        self.project_area.children = [title, self.tabs]
        self.status.info(f"Opened project {project}.")

    def open_review(self, project: str, experiment: str, scan: str) -> None:
        """Show one scan in the review view (called by the overview)."""
        assert self.user is not None
        session = getattr(self.review, "session", None)
        if session is not None and (session.project, session.user) == (project, self.user):
            # the same project: the open review panel moves to the scan (one session)
            session.open((experiment, scan))
        else:
            view = self.review_factory(self.catalog, self.user, project, experiment, scan)
            self._show_review(view)
        self.tabs.selected_index = REVIEW_TAB
        self._show_reviewing()

    def _build_overview(self) -> None:
        assert self.project is not None
        self.overview = Overview(
            self.catalog,
            self.project,
            self.open_review,
            thumbnail_dir=self.thumbnail_dir,
            status=self.status,
            background=self.background,
        )
        self.scans_box.children = [self.overview.widget]

    def start_review(self, project: str) -> None:
        """Open ``project`` on its Review tab, where the user left off (a page address
        with ``&project=NAME`` does this: a reviewer's bookmark)."""
        self.open_project(project, overview=False)
        assert self.tabs is not None
        self.tabs.selected_index = REVIEW_TAB

    def resume_review(self) -> None:
        """Start the review view where the user left off in the open project."""
        assert self.user is not None and self.project is not None
        view = self.review_factory(self.catalog, self.user, self.project, None, None)
        self._show_review(view)
        self._show_reviewing()

    def _show_review(self, view: widgets.Widget) -> None:
        """Put ``view`` in the Review tab, then close the view it replaces: a page still
        drawing the old one must find it in the box until the box no longer holds it
        (closing it first made the page look for a widget that was gone)."""
        old = self.review if self.review is not view else None
        self.review_box.children = [view]
        if old is not None:
            self._close_review()
        self.review = view
        self._watch(view)

    def _watch(self, view: widgets.Widget) -> None:
        """Follow the review's session: progress and status stay current."""
        session = getattr(view, "session", None)
        if session is None:
            return
        if self._unwatch is not None:
            self._unwatch()

        def changed(event: str) -> None:
            if event == "scan":
                self._show_reviewing()
            else:
                self._show_review_progress()

        self._unwatch = session.observe(
            self.status.guard(changed), events={"scan", "queue", "submitted", "stored"}
        )
        self._show_review_progress()

    def _show_reviewing(self) -> None:
        """The status line names the scan being reviewed (never a scan left before)."""
        session = getattr(self.review, "session", None)
        current = getattr(session, "key", None)
        if session is None:
            return
        self.status.info(
            f"Reviewing scan {current[1]} ({current[0]}) of project {session.project}."
            if current is not None
            else f"Reviewing project {session.project}: {session.message or 'no scan open'}."
        )

    def _show_review_progress(self) -> None:
        """The project list shows the review's progress (the whole project: the
        dashboard's review has no type or experiment filter)."""
        session = getattr(self.review, "session", None)
        if session is None or self.projects is None:
            return
        progress = session.progress
        self.projects.show_progress(
            session.project, progress.reviewed, progress.total, progress.complete
        )

    def _tab_changed(self, change: Mapping[str, object]) -> None:
        self._show_project_list(change["new"] != REVIEW_TAB)
        waiting = self.review is not None and self.review is self._waiting
        if change["new"] == REVIEW_TAB and waiting:
            self.resume_review()
        elif change["new"] == OVERVIEW_TAB and self.project is not None:
            session = getattr(self.review, "session", None)
            if session is not None:
                session.flush(timeout=5)  # decisions just submitted are in the catalog
            if self.overview is None:
                self._build_overview()
            else:
                self.overview.refresh()

    def _show_project_list(self, shown: bool) -> None:
        """The list of projects (and the staging area) is hidden while the Review tab is
        shown (the planes and the decision then fit a 1440 x 900 window); any other tab
        shows it again."""
        parts = [self.projects.widget if self.projects is not None else None, self.staging_area]
        for widget in parts:
            if widget is not None:
                widget.layout.display = "" if shown else "none"

    def _staging_title(self, waiting: int) -> None:
        """The staging area's title says how many sessions wait."""
        if self.staging_area is not None:
            noun = "session waits" if waiting == 1 else "sessions wait"
            self.staging_area.titles = (f"Staging area: {waiting} {noun} to be archived",)

    def refresh(self) -> None:
        """Reload progress and the overview after something changed."""
        if self.projects is not None:
            self.projects.refresh()
        if self.overview is not None:
            self.overview.refresh()

    def close_project(self) -> None:
        for part in (self.overview, self.admin, self.upload):
            if part is not None:
                part.widget.close()
        self._close_review()
        self.overview = self.admin = self.upload = None
        self.review = None
        self.project_area.children = []
        self._show_project_list(True)

    def _close_review(self) -> None:
        """Close the review view and its session (which gives up its claims)."""
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        if self.review is None:
            return
        session = getattr(self.review, "session", None)
        self.review.close()
        if session is not None:
            self.status.run(session.close)
        self.review = None

    def release(self) -> None:
        """Give up the review's claims (its session closes; the widgets stay).

        Called when the page has gone: by the page watch, and when the kernel ends.
        """
        session = getattr(self.review, "session", None)
        if session is not None:
            session.close()

    def watch_page(self, environ: Mapping[str, str]) -> None:
        """Served: end this kernel and its claims once the page has gone.

        The claims are given up when the kernel ends (closed or reloaded page: Voila's
        shutdown request), and when the server has seen no page for a while
        (:class:`~miqa_nb.dashboard.lifeline.PageWatch`); elsewhere nothing happens.
        """
        from miqa_nb.dashboard.lifeline import PageWatch

        watch = PageWatch.from_environment(environ, on_gone=self.release)
        if watch is None:
            return
        atexit.register(_quietly, self.release)
        watch.start()

    def close(self) -> None:
        """Close every widget of the dashboard."""
        self.close_project()
        if self.staging is not None:
            self.staging.close()
        self.widget.close()


def _quietly(action: Callable[[], object]) -> None:
    """Run ``action`` at exit; log what it raises (the kernel is ending anyway)."""
    try:
        action()
    except Exception:
        log.exception("giving up the claims at the kernel's end failed")
