"""The provider sandbox: stand-ins, speaking the real protocols, for services out of reach."""
