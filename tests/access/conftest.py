from appdb import *  # noqa: F403  (shared app-database fixtures)
