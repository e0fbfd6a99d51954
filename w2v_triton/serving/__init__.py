"""What runs inside Triton (and the server image): nothing here imports build, train or eval."""
