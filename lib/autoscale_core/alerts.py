"""Transitional: the alert vocabulary now lives in ``domain/alerts.py`` and New Relic's
parsing in ``sources/newrelic.py``. Only ``alert_state.py`` (moved by another branch of the
same redesign) still imports it from here; remove this file when that import is updated."""

from .domain.alerts import ACKNOWLEDGED, CLOSED, CRITICAL, INFO, OPEN, WARNING

__all__ = ["ACKNOWLEDGED", "CLOSED", "CRITICAL", "INFO", "OPEN", "WARNING"]
