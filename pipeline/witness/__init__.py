"""A C2SP tlog-witness: an independent party that cosigns a chain's checkpoint only if it is
consistent with the last one it cosigned for that chain.

    core.py    the add-checkpoint decision and the request format (pure)
    state.py   what the witness remembers, per origin, written atomically (a kill -9 never makes it
               forget a cosigned size or cosign an inconsistent one)
    server.py  `aiaudit witness serve`: the HTTP edge
    submit.py  the operator's side: send new checkpoints with consistency proofs, keep the cosignatures
"""
