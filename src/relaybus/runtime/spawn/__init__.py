"""Spawning agent programs from code (issue 19): the warm local relay supervises
them (:mod:`.supervisor`); :mod:`relaybus.presets` knows each agent CLI's flags."""
