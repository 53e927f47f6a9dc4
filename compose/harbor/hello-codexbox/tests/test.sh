#!/bin/sh
# Harbor's verifier: reward 1 when the agent made the file, else 0.
mkdir -p /logs/verifier
# Only a regular file counts (never a link or a FIFO the agent left for root to follow or wait on).
if [ -f /workspace/hello.txt ] && [ ! -L /workspace/hello.txt ] \
  && [ "$(head -c 64 /workspace/hello.txt)" = "hello from codexbox" ]; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
