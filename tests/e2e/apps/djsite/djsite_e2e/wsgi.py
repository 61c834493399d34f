"""WSGI script for the minimal Django project (loaded by path, as mod_wsgi
does; the group's python-path puts the project folder on sys.path)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djsite_e2e.settings")

application = get_wsgi_application()
