from gpu_worker.cli import main

main()
