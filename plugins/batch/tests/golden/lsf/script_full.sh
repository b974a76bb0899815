#!/bin/bash
# pilotkit pilot job for LSF: runs the pilot agent on the first node of the allocation.
#BSUB -J zjets
#BSUB -cwd /scratch/alice/run
#BSUB -o /scratch/alice/run/pilot-%J.out
#BSUB -e /scratch/alice/run/pilot-%J.err
#BSUB -n 16
#BSUB -R 'span[ptile=8]'
#BSUB -R 'rusage[mem=16384MB/host]'
#BSUB -gpu num=4
#BSUB -R 'select[a100]'
#BSUB -W 91
#BSUB -wa USR1
#BSUB -wt 5
#BSUB -q normal
#BSUB -P atlas
export PILOTKIT_PILOT_ID=zjets-1
exec /opt/pilotkit/bin/pilotkit agent --pilot zjets-1
