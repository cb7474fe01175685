"""Signals sent around the encoding and decoding of a stored table.

Both are sent as ``signal.send(sender=<model class>, kwargs=arguments)``, so a
receiver ``def hook(sender, **kwargs)`` finds the argument dict in
``kwargs['kwargs']``. Its keys:

``data``        the payload: on save a list in Django's serializer format,
                on load the stored bytes;
``application`` the app label; ``model`` the model class name;
``database``    the in-memory alias;
``processors``  an empty list: append callables to it;
``process``     ``'encode'`` on save, ``'decode'`` on load.

After the receivers ran, each processor is called in order with the dict and
may replace ``data``.
"""

from __future__ import annotations

from django.dispatch import Signal

store_save = Signal()
store_load = Signal()

# Sent around a flush of the identity map (see identity.flush) as
# ``signal.send(sender=<model class, or models.Model for all>, alias=<alias or None>, instance=<instance or None>)``.
pre_flush = Signal()
post_flush = Signal()
