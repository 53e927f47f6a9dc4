#!/bin/sh
# Harbor's verifier: reward 1 when the agent made the file, else 0.
mkdir -p /logs/verifier
if [ "$(cat /workspace/hello.txt 2>/dev/null)" = "hello from codexbox" ]; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
