from redis_swarm.cli import main

main()
