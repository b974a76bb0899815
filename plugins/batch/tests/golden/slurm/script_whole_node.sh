#!/bin/bash
# pilotkit pilot job for Slurm: runs the pilot agent on the first node of the allocation.
#SBATCH --job-name=pilot
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --chdir=/home/bob/run
#SBATCH --output=/home/bob/run/pilot.out
#SBATCH --error=/home/bob/run/pilot.err
#SBATCH --signal=B:USR1@60
#SBATCH --no-kill
#SBATCH --no-requeue
#SBATCH --exclusive
exec pilotkit agent
