#!/bin/bash
# pilotkit pilot job for PBS Pro: runs the pilot agent on the first node of the allocation.
#PBS -N pilot
#PBS -l select=1:mem=1536mb
#PBS -l place=scatter:excl
#PBS -o /w/o
#PBS -e /w/e
cd /w
exec pilotkit agent
