#!/bin/bash
# pilotkit pilot job for LSF: runs the pilot agent on the first node of the allocation.
#BSUB -J pilot
#BSUB -cwd /w
#BSUB -o /w/o
#BSUB -e /w/e
#BSUB -n 3
#BSUB -R 'span[ptile=1]'
#BSUB -x
exec pilotkit agent
