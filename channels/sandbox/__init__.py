"""The local provider sandbox: stand-ins, speaking the real protocols, for services no machine here can reach."""
