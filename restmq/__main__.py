from restmq.cli import main

main()
