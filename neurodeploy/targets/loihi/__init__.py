"""Intel Loihi 2 (fixed point): one package for the lowering (:mod:`.lowering`), the bit-exact torch
emulator (:mod:`.emu`, target ``loihi-emu``) and the Lava runner (:mod:`.lava`, target ``lava``).

Lava is imported only in the child process of :mod:`.lava.runner`; importing this package never
imports Lava.
"""
