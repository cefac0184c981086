"""What runs in the guest (agent.py, bench.py, init.sh) and the protocol it shares with the host."""
