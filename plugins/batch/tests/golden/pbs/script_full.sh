#!/bin/bash
# pilotkit pilot job for PBS Pro: runs the pilot agent on the first node of the allocation.
#PBS -N zjets
#PBS -l select=2:ncpus=8:ngpus=1:mem=16gb
#PBS -l place=scatter
#PBS -o /scratch/alice/run/pilot.out
#PBS -e /scratch/alice/run/pilot.err
#PBS -l walltime=50:00:00
#PBS -q workq
#PBS -A atlas
export PILOTKIT_PILOT_ID=zjets-1
cd /scratch/alice/run
exec /opt/pilotkit/bin/pilotkit agent --pilot zjets-1
