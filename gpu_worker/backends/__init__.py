"""Training backends (native torch, TAO containers) behind one interface."""
