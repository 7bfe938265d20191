"""The staff pages of the profile library, the enrollments and the device groups.

Thin views over enrollment.library, enrollment.enrollments, enrollment.membership and
devices.groups (the functions `mdm_profile` and `mdm_enrollment` call too). Groups live here
rather than in devices because their membership decides which library profiles devices get.

Every form has a page of its own (GET) where its errors are shown next to their field (a 400
for the POST that failed); the list and detail pages embed the same forms. Destructive actions
(delete, deactivate, unassign, remove from a group) are a GET confirmation page, then a POST.
"""
