"""The administration's sign-in section (superusers): passwords, links and API tokens.

A thin view over the credential methods of
:class:`~miqa_nb.dashboard.model.AdminActions`, which refuse anyone but superusers
(the page is untrusted: a crafted widget message can set any value or click a
disabled button, so nothing is checked here). The administration panel builds this
section for superusers only.

Secrets are shown once and do not linger: a new sign-in link or API token shows in
``miqa-credential-secret`` until another user is chosen, another credential action
runs or the section is refreshed. The password fields are cleared after every try,
whether it worked or not; neither a password nor a secret goes to the status line or
the log.

Stable classes: ``miqa-credentials`` (who has a password), ``miqa-credential-user``;
``miqa-signin-minutes``, ``miqa-signin-link``; ``miqa-password``,
``miqa-password-again``, ``miqa-set-password``; ``miqa-token-days``,
``miqa-new-token``, ``miqa-tokens`` (the chosen user's tokens), ``miqa-token-id``,
``miqa-revoke-token``; ``miqa-credential-secret`` (the secret shown once).
"""

from __future__ import annotations

import html
from datetime import datetime

import ipywidgets as widgets
import pandas as pd

from miqa_nb.dashboard._status import StatusBar
from miqa_nb.dashboard.model import AdminActions, Secret

__all__ = ["CredentialsSection", "secret_html"]


def _when(moment: datetime | None) -> str:
    return "never" if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"


def secret_html(secret: Secret) -> str:
    """A secret shown once: what it is, whose, until when, and the text to copy."""
    head = f"{secret.kind.capitalize()} for {secret.user}"
    if secret.token_id is not None:
        head += f" (id {secret.token_id})"
    if secret.kind == "sign-in link":
        tail = f"It works once, until {_when(secret.expires_utc)}."
    else:
        tail = f"It expires: {_when(secret.expires_utc)}."
    return (
        f"<p><b>{html.escape(head)}</b>. {html.escape(tail)} Copy it now: it is shown only "
        f"this once.</p><pre style='user-select:all;white-space:pre-wrap;word-break:break-all'>"
        f"{html.escape(secret.text)}</pre>"
    )


def _tokens_html(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p>No API tokens.</p>"
    shown = frame.astype(object).where(frame.notna(), "-")
    return str(shown.to_html(index=False, escape=True, border=0))


def _control(widget: widgets.Widget, css: str) -> widgets.Widget:
    widget.add_class(css)
    return widget


def _button(description: str, css: str, style: str = "") -> widgets.Button:
    button = widgets.Button(
        description=description,
        button_style=style,
        tooltip=description,
        layout=widgets.Layout(width="auto", min_width="8em"),
    )
    button.add_class(css)
    return button


class CredentialsSection:
    """Who has a password; for one chosen user: a sign-in link, a password, API tokens."""

    def __init__(self, actions: AdminActions, status: StatusBar) -> None:
        self.actions = actions
        self.status = status
        guard = status.guard
        self.table = _control(widgets.HTML(), "miqa-credentials")
        self.user = _control(
            widgets.Dropdown(description="User", options=[]), "miqa-credential-user"
        )
        self.user.observe(guard(lambda _c: self._user_changed()), names="value")

        self.minutes = _control(
            widgets.BoundedIntText(
                value=30, min=1, max=24 * 60, description="Minutes", layout={"width": "12em"}
            ),
            "miqa-signin-minutes",
        )
        self.make_link = _button("One-time sign-in link", "miqa-signin-link")
        self.make_link.on_click(guard(lambda _b: self._make_link()))

        # sent to the kernel when a field is left, not with each key (see admin._text)
        self.password = _control(
            widgets.Password(description="Password", continuous_update=False),
            "miqa-password",
        )
        self.password_again = _control(
            widgets.Password(description="Again", continuous_update=False),
            "miqa-password-again",
        )
        self.set_password = _button("Set password", "miqa-set-password", "warning")
        self.set_password.on_click(guard(lambda _b: self._set_password()))

        self.token_days = _control(
            widgets.Text(
                description="Expires in",
                placeholder="days (blank: never)",
                continuous_update=False,
                layout={"width": "18em"},
            ),
            "miqa-token-days",
        )
        self.new_token = _button("New API token", "miqa-new-token")
        self.new_token.on_click(guard(lambda _b: self._new_token()))
        self.tokens = _control(widgets.HTML(), "miqa-tokens")
        self.token_id = _control(widgets.Dropdown(description="Token", options=[]), "miqa-token-id")
        self.revoke = _button("Revoke token", "miqa-revoke-token", "danger")
        self.revoke.on_click(guard(lambda _b: self._revoke()))

        self.secret = _control(widgets.HTML(), "miqa-credential-secret")
        self.widget = widgets.VBox(
            [
                widgets.HTML("<b>Sign-in (superusers)</b>"),
                self.table,
                self.user,
                widgets.HBox([self.minutes, self.make_link]),
                widgets.HBox([self.password, self.password_again, self.set_password]),
                widgets.HBox([self.token_days, self.new_token]),
                self.tokens,
                widgets.HBox([self.token_id, self.revoke]),
                self.secret,
            ]
        )
        self.widget.add_class("miqa-admin-credentials")
        self.refresh()

    # ------------------------------------------------------------------ views

    def refresh(self) -> None:
        """Re-read the users and the chosen user's tokens; forget any shown secret."""
        self.forget_secret()
        listing = self.actions.credentials()
        shown = listing.assign(
            superuser=listing["superuser"].map({True: "yes", False: ""}),
            password=listing["password"].map({True: "yes", False: "no"}),
        )
        self.table.value = str(shown.to_html(index=False, escape=True, border=0))
        names = [str(n) for n in listing["name"]]
        chosen = self.user.value if self.user.value in names else None
        self.user.options = names
        self.user.value = chosen if chosen is not None else (names[0] if names else None)
        self._refresh_tokens()

    def forget_secret(self) -> None:
        """Take a shown link or token off the page, and empty the password fields."""
        self.secret.value = ""
        self.password.value = ""
        self.password_again.value = ""

    def _refresh_tokens(self) -> None:
        member = self.user.value
        if member is None:
            self.tokens.value, self.token_id.options = "", []
            return
        listing = self.actions.tokens(member)
        self.tokens.value = _tokens_html(listing)
        active = listing[listing["revoked_utc"].isna()]
        self.token_id.options = [str(i) for i in active["id"]]

    def _user_changed(self) -> None:
        self.forget_secret()
        self._refresh_tokens()

    def _member(self) -> str | None:
        if self.user.value is None:
            self.status.info("Choose a user first.")
        return self.user.value

    # ---------------------------------------------------------------- actions

    def _make_link(self) -> None:
        self.forget_secret()
        member = self._member()
        if member is None:
            return
        secret = self.actions.signin_link(member, minutes=self.minutes.value)
        self.secret.value = secret_html(secret)
        self.status.ok(f"Made a one-time sign-in link for {member}: copy it below.")

    def _set_password(self) -> None:
        password, again = self.password.value, self.password_again.value
        self.forget_secret()  # the fields are emptied whether it works or not
        member = self._member()
        if member is None:
            return
        self.actions.set_password(member, password, again)
        self.refresh()
        self.status.ok(f"Set the password of {member}.")

    def _new_token(self) -> None:
        self.forget_secret()
        member = self._member()
        if member is None:
            return
        secret = self.actions.create_token(member, self.token_days.value)
        self.token_days.value = ""
        self._refresh_tokens()
        self.secret.value = secret_html(secret)
        self.status.ok(f"Made API token {secret.token_id} for {member}: copy it below.")

    def _revoke(self) -> None:
        self.forget_secret()
        member = self._member()
        token_id = self.token_id.value
        if member is None:
            return
        if token_id is None:
            self.status.info(f"{member} has no API token to revoke.")
            return
        self.actions.revoke_token(member, token_id)
        self._refresh_tokens()
        self.status.ok(f"Revoked API token {token_id} of {member}.")
