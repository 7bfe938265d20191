"""The staff pages of Declarative Device Management, under /declarations/.

Thin views over declarations.store (declarations), declarations.sets (sets and their
assignments), declarations.assets (data the portal serves) and declarations.states (where
each declaration stands on each device): the functions the API and `mdm_declaration` call
too, which validate and audit. Forms are built from Apple's schema (declarations.schema) with
the command forms' field builder (commands.fields), so a declaration's form is its Type's keys.

Viewers read everything (never served data nor a credential); operators manage declarations,
sets, assignments and plain asset data; administrators also ACME and SCEP credential assets
and uploaded credential data (declarations.ui.access). Destructive actions are a GET
confirmation page, then a POST, as on the profile library's pages.
"""
