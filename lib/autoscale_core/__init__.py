"""The autoscale pack's shared library: every piece of logic the actions and sensors use.

It lives in the pack's lib/ folder and is reached through two symlinks, because StackStorm puts
actions/lib on an action's path and only sensors/ on a sensor's (lib/ itself only with
``[packs] enable_common_libs = True``):

    actions/lib/autoscale_core -> ../../lib/autoscale_core
    sensors/autoscale_core     -> ../lib/autoscale_core
"""
