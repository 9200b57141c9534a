from docker_model.cli.main import main

main()
