#!/bin/bash
# pilotkit pilot job for Slurm: runs the pilot agent on the first node of the allocation.
#SBATCH --job-name='zjets pilot'
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=1
#SBATCH --chdir=/scratch/alice/pilotkit-runs/zjets-1
#SBATCH --output=/scratch/alice/pilotkit-runs/zjets-1/slurm-%j.out
#SBATCH --error=/scratch/alice/pilotkit-runs/zjets-1/slurm-%j.err
#SBATCH --signal=B:USR1@120
#SBATCH --no-kill
#SBATCH --no-requeue
#SBATCH --cpus-per-task=32
#SBATCH --mem=64G
#SBATCH --gpus-per-node=4
#SBATCH --time=1-12:00:00
#SBATCH --partition=gpu
#SBATCH --account=atlas
#SBATCH --qos=normal
#SBATCH --constraint='a100&ib'
export PILOTKIT_PILOT_ID=zjets-1
export PILOTKIT_LOG='debug info'
exec /opt/pilotkit/bin/pilotkit agent --pilot zjets-1 --note 'it'"'"'s $HOME'
