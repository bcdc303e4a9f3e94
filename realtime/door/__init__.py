"""Door access: decisions over a face track (policy), tamper-evident audit log, unlock hook, calibration.

There is no liveness (anti-spoofing) check anywhere in this package: a photo or a screen showing an enrolled
person is treated like the person.
"""
