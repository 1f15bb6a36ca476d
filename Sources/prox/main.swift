import ProxCLI

ProxCommand.main()
