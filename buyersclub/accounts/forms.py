"""Account forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from buyersclub.accounts.services import MIN_PASSWORD_LENGTH


class SignInForm(FlaskForm):
    email = EmailField("E-mail address", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired()])


class ForgotPasswordForm(FlaskForm):
    email = EmailField("E-mail address", validators=[DataRequired(), Length(max=254)])


class SetPasswordForm(FlaskForm):
    password = PasswordField(
        "New password",
        validators=[
            DataRequired(message="Enter a new password."),
            Length(min=MIN_PASSWORD_LENGTH, max=200,
                   message=f"Choose a password of {MIN_PASSWORD_LENGTH} to 200 characters."),
        ],
        description=f"At least {MIN_PASSWORD_LENGTH} characters. A few unrelated words work well.",
    )
    confirm = PasswordField(
        "Repeat the new password",
        validators=[DataRequired(), EqualTo("password", message="The two passwords differ.")],
    )


class NewTokenForm(FlaskForm):
    name = StringField(
        "Token name", validators=[DataRequired(), Length(max=80)],
        description="What the token is for, e.g. 'inventory spreadsheet'.",
    )
