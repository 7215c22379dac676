"""Flask extensions, created unbound here and bound to each app by the factory."""

from __future__ import annotations

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
migrate = Migrate()
login_manager = LoginManager()
login_manager.login_view = "accounts.sign_in"
login_manager.login_message = "Please sign in to see that page."
login_manager.login_message_category = "info"
