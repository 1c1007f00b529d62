"""Train a task policy with PPO on the batched Motion VAE environment.

    python train_policy.py --task target|timed_target|joystick|path_follow|maze --vae CKPT --out POLICY
        [--num-envs N] [--steps N] [--device cpu|cuda] [--seed S] [--resume]

Every option (``--help``) is a field of ``policies.train_args.TrainArgs``; the loop is ``policies.train``.
"""

from policies.train import main

if __name__ == "__main__":
    raise SystemExit(main())
