"""Sign in and out, password reset, invitations and the account page."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user

from buyersclub.accounts import services
from buyersclub.accounts.forms import ForgotPasswordForm, NewTokenForm, SetPasswordForm, SignInForm
from buyersclub.accounts.models import User
from buyersclub.actor import Actor
from buyersclub.app import commit_despite_error
from buyersclub.db import db
from buyersclub.extensions import login_manager

bp = Blueprint("accounts", __name__, template_folder="templates")


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    user = db.session.get(User, int(user_id))
    return user if user is not None and user.is_active else None


def current_actor() -> Actor:
    return Actor.for_user(current_user._get_current_object(), address=request.remote_addr)


def _safe_next(target: str | None) -> str:
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") and not target.startswith("//"):
            return target
    return url_for("web.home")


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    if current_user.is_authenticated:
        return redirect(url_for("web.home"))
    form = SignInForm()
    if form.validate_on_submit():
        config = current_app.config
        try:
            user = services.authenticate(
                form.email.data,
                form.password.data,
                request.remote_addr or "unknown",
                limit=config["LOGIN_THROTTLE_LIMIT"],
                window_minutes=config["LOGIN_THROTTLE_WINDOW_MINUTES"],
            )
        except services.SignInThrottled as throttled:
            form.form_errors.append(
                f"Too many failed sign-ins. For your safety, signing in is paused for up to "
                f"{throttled.minutes} minutes. You can reset your password meanwhile."
            )
            return render_template("accounts/sign_in.html", form=form), 429
        if user is not None:
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        commit_despite_error()  # keep the failed attempt, for throttling
        form.form_errors.append("That e-mail address and password do not match an account.")
        return render_template("accounts/sign_in.html", form=form), 401
    return render_template("accounts/sign_in.html", form=form)


@bp.post("/sign-out")
def sign_out():
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("accounts.sign_in"))


@bp.route("/forgot-password", methods=["GET", "POST"])
def forgot_password():
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        services.request_password_reset(
            form.email.data,
            lambda token: url_for("accounts.reset_password", token=token, _external=True),
        )
        flash("If an account uses that address, a link to reset the password is on its way.", "info")
        return redirect(url_for("accounts.sign_in"))
    return render_template("accounts/forgot_password.html", form=form)


def _set_password_page(token: str, salt: str, max_age_key: str, title: str):
    user = services.user_for_password_token(token, current_app.config[max_age_key], salt)
    if user is None:
        return render_template("accounts/link_expired.html"), 400
    form = SetPasswordForm()
    if form.validate_on_submit():
        services.set_password(Actor.for_user(user, request.remote_addr), user, form.password.data)
        login_user(user)
        flash("Your password is set. You are signed in.", "info")
        return redirect(url_for("web.home"))
    return render_template("accounts/set_password.html", form=form, user=user, title=title)


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    return _set_password_page(
        token, services.RESET_SALT, "PASSWORD_RESET_MAX_AGE", "Choose a new password"
    )


@bp.route("/invitation/<token>", methods=["GET", "POST"])
def accept_invitation(token: str):
    return _set_password_page(
        token, services.INVITE_SALT, "INVITATION_MAX_AGE", "Welcome: choose your password"
    )


def _account_page(form: NewTokenForm, new_token: str | None = None, status: int = 200):
    tokens = db.session.scalars(services.tokens_of(current_user)).all()
    page = render_template("accounts/account.html", tokens=tokens, form=form, new_token=new_token)
    return page, status


@bp.get("/account")
@login_required
def account():
    return _account_page(NewTokenForm())


@bp.post("/account/tokens")
@login_required
def create_token():
    form = NewTokenForm()
    if not form.validate_on_submit():
        return _account_page(form, status=400)
    _, plain = services.issue_token(current_actor(), current_user, form.name.data)
    # Shown once, on this response only; never stored in plain text, nor cached.
    page, status = _account_page(NewTokenForm(formdata=None), new_token=plain)
    response = make_response(page, status)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/account/tokens/<int:token_id>/revoke")
@login_required
def revoke_token(token_id: int):
    token = services.revoke_token(current_actor(), token_id)
    flash(f"The token “{token.name}” is revoked; programs using it can no longer sign in.", "info")
    return redirect(url_for("accounts.account"))
