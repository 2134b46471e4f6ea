"""The domain layer: projects and what happens to them, with no HTTP in sight.

`serving` brings a project's sandbox and dev server up; `versions` turns a sandbox's
files into the project's next version and back; `files` is the persistent flow's file
store; `service.Projects` is what the API calls: create, continue, restore, serve,
rebuild, delete.
"""
