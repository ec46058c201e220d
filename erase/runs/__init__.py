"""Runs: the models, the methods (a method is a row), the loop, the store, per-run evaluation and
the Lab that trains, unlearns and evaluates by config, keyed in the store.

Imports point down the data flow: from here to ``erase.data`` and ``erase.config``, never to
``measures``, ``report`` or ``book``.
"""
