"""Exit codes a worker uses to tell the runner why it ended, beyond a crash."""

RPC_LOST_EXIT_CODE = 75  # it lost its connection to an RPC server of its pool (llama.cpp cannot go on without it)
