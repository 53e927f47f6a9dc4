#!/bin/sh
# The oracle: what a correct agent does.
echo "hello from codexbox" > /workspace/hello.txt
