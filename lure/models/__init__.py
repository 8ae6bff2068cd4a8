"""LURE network modules (pure ``nn.Module``s; nothing here opens a file).

Import from the submodules (``lure.models.lure_model.LURE``, ``lure.models.config.LUREConfig``);
this package imports nothing itself, so reading a configuration never builds the network.
"""
