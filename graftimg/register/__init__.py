"""graftimg.register: rigid registration of sessions and resampling between grids."""

from graftimg.register.session import SessionRegistration, register_session

__all__ = ["SessionRegistration", "register_session"]
