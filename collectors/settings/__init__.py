"""The settings models the collectors own: one module per kind of target (and its config section).

:mod:`monitor.config` composes the whole config file from these models; they build on
:mod:`collectors.settings.base` and import nothing above the collectors.
"""
